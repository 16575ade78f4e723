"""The import direction of docs/architecture.md: no library module imports a module of a higher layer."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "cosplace_xs"
# rank of each top-level module or package of cosplace_xs; a module may import only ranks <= its own
LAYERS = {
    0: ("__init__", "config", "options", "errors", "atomic_files", "progress", "seeding", "device", "recipes"),
    1: ("data", "model", "augment", "synthetic", "checkpoints"),
    2: ("evaluation", "visualize"),
    3: ("predict", "training", "web"),
    4: ("sweep",),
    5: ("cli", "__main__"),
}
RANK = {name: rank for rank, names in LAYERS.items() for name in names}


def _top(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def _imports(path: Path) -> set[str]:
    """Every cosplace_xs module `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cosplace_xs"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names if node.module == "cosplace_xs")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("cosplace_xs"))
    return found


def test_every_module_has_a_layer() -> None:
    tops = {path.relative_to(PACKAGE).parts[0].removesuffix(".py") for path in PACKAGE.glob("*")
            if path.suffix == ".py" or (path / "__init__.py").is_file()}
    assert tops == set(RANK), "add new modules to LAYERS and to docs/architecture.md"


def test_no_module_imports_a_higher_layer() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for module in _imports(path):
            imported = _top(module)
            if imported in RANK and RANK[imported] > RANK[importer]:
                upward.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert upward == []
