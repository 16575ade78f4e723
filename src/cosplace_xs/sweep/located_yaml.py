"""YAML read with the line of every key and item, so that errors in a sweep spec can name their line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cosplace_xs.errors import ConfigError

Where = tuple[str | int, ...]  # keys and list indices from the document root


@dataclass(frozen=True)
class LocatedYaml:
    """A parsed YAML document and the line (1-based) of every mapping key and list item in it."""

    path: Path
    data: Any
    lines: dict[Where, int]

    def line(self, where: Where) -> int:
        """The line of `where`, else of its nearest enclosing key (values built in code have no line)."""
        while where not in self.lines and where:
            where = where[:-1]
        return self.lines.get(where, 1)

    def error(self, where: Where, message: str) -> ConfigError:
        return ConfigError(f"{self.path}:{self.line(where)}: {message}")


def _walk(loader: yaml.SafeLoader, node: yaml.Node, where: Where, lines: dict[Where, int], path: Path) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:  # PyYAML would silently keep the last one: a spec with two `grid:` is a mistake
                raise ConfigError(f"{path}:{line}: key '{key}' appears twice in the same mapping")
            seen.add(key)
            lines[(*where, key)] = line
            _walk(loader, value_node, (*where, key), lines, path)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*where, index)] = item.start_mark.line + 1
            _walk(loader, item, (*where, index), lines, path)


def load_located_yaml(path: str | Path) -> LocatedYaml:
    """Parse `path` with the safe loader, keeping the lines; unreadable files raise ConfigError naming them."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    loader = yaml.SafeLoader(path.read_text())
    try:
        node = loader.get_single_node()
        if node is None:
            return LocatedYaml(path, None, {})
        lines: dict[Where, int] = {(): node.start_mark.line + 1}
        _walk(loader, node, (), lines, path)
        return LocatedYaml(path, loader.construct_document(node), lines)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    finally:
        loader.dispose()
