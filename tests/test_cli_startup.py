"""Start-up of the `cosplace-xs` command: building its parser imports no heavy library, so `--help` and a typo
answer at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "torchvision", "sklearn", "matplotlib", "tensorboard", "faiss")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_building_the_parser_imports_no_heavy_library() -> None:
    done = _python("import sys; from cosplace_xs.cli import build_parser; build_parser(); "
                   f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["demo", "--help"], ["synth", "--help"]],
                         ids=" ".join)
def test_help_exits_0_without_heavy_libraries(argv: list[str]) -> None:
    done = _python("import sys; from cosplace_xs.cli import main\n"
                   f"try:\n    main({argv!r})\nexcept SystemExit as stop:\n    code = stop.code\n"
                   f"print('exit', code, sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "exit 0 []"
    assert "usage: cosplace-xs" in done.stdout


def test_a_typo_in_the_command_answers_without_heavy_libraries() -> None:
    done = _python("import sys; from cosplace_xs.cli import main\n"
                   "try:\n    main(['trian'])\nexcept SystemExit as stop:\n    code = stop.code\n"
                   f"print('exit', code, sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert done.stdout.splitlines()[-1] == "exit 2 []"
    assert "train" in done.stderr and "Traceback" not in done.stderr


def test_city_preset_names_in_config_are_the_synthetic_city_presets() -> None:
    from cosplace_xs.config import CITY_PRESETS
    from cosplace_xs.synthetic.city import PRESETS

    assert tuple(PRESETS) == CITY_PRESETS


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"]], ids=" ".join)
def test_the_installed_command_answers_help(argv: list[str]) -> None:
    done = subprocess.run([str(Path(sys.executable).with_name("cosplace-xs")), *argv], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: cosplace-xs {argv[0] if argv[0] != '--help' else ''}".rstrip())
