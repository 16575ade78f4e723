"""Reliability of a new user's first hour: a mistyped command, flag or value, and the README's training line
pointed at a city too small for its options, each give one `error: ` line naming the option, before any work
(nothing drawn, trained or left behind)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cosplace_xs.cli import main

HEAVY = ("torch", "torchvision", "sklearn", "matplotlib", "tensorboard", "faiss")

# (case id, argv given the tmp folder, expected exit code, expected message fragment)
MISTYPED: list[tuple[str, Callable[[Path], list[str]], int, str]] = [
    ("a mistyped command", lambda tmp: ["trian", str(tmp / "city")], 2,
     "cosplace-xs: error: argument COMMAND: invalid choice: 'trian'"),
    ("a mistyped train flag", lambda tmp: ["train", str(tmp / "city"), "--epoch", "2"], 2,
     "cosplace-xs train: error: unrecognized arguments: --epoch 2 (--epoch: did you mean --epochs?)"),
    ("a demo preset that does not exist", lambda tmp: ["demo", "--data", str(tmp / "city"), "--preset", "huge"], 2,
     "cosplace-xs demo: error: argument --preset: invalid choice: 'huge' (choose from 'tiny', 'small', 'medium', "
     "'large')"),
    ("demo --epochs 0", lambda tmp: ["demo", "--data", str(tmp / "city"), "--runs-root", str(tmp / "runs"),
                                     "--epochs", "0"], 2,
     "error: option --epochs=0 is out of range: >= 1"),
    ("demo --iterations-per-epoch two", lambda tmp: ["demo", "--data", str(tmp / "city"), "--runs-root",
                                                     str(tmp / "runs"), "--iterations-per-epoch", "two"], 2,
     "error: option --iterations-per-epoch=two is not a number, expected an integer"),
]


@pytest.mark.parametrize(("make_argv", "code", "fragment"), [row[1:] for row in MISTYPED],
                         ids=[row[0] for row in MISTYPED])
def test_a_mistyped_command_flag_or_value_is_refused_before_any_work(
        make_argv: Callable[[Path], list[str]], code: int, fragment: str, tmp_path: Path) -> None:
    """In a child process: the refusal comes before torch or any other heavy library is imported, and before
    a city is drawn or a run folder made."""
    argv = make_argv(tmp_path)
    done = subprocess.run([sys.executable, "-c", "import sys\nfrom cosplace_xs.cli import main\n"
                           f"try:\n    code = main({argv!r})\nexcept SystemExit as stop:\n    code = stop.code\n"
                           f"print('exit', code, sorted(m for m in {HEAVY!r} if m in sys.modules))"],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines()[-1] == f"exit {code} []"
    errors = [line for line in done.stderr.splitlines() if "error: " in line]
    assert len(errors) == 1 and fragment in errors[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no city, no run folder


README_TRAIN = ["--no-pretrained", "--train-all-layers", "--image-size", "64", "--min-images-per-class", "4",
                "--lr", "1e-3", "--epochs", "2", "--iterations-per-epoch", "50", "--no-progress"]
# (case id, options added to README's line, expected message)
TOO_SMALL = [
    ("README's line without --batch-size on the tiny city", ["--groups-num", "10"],
     "error: option --batch-size=32 is larger than the 12 classes of group 0 (group id (1, 0, 0)); a batch holds "
     "distinct classes, so use --batch-size <= 12, fewer groups (--groups-num), or more classes per group (lower "
     "--min-images-per-class, or smaller --N / --L)"),
    ("more groups than the tiny city has", ["--batch-size", "12", "--groups-num", "60"],
     "error: --groups-num=60 asks for 60 groups, but the split of {city}/train has 10 groups (M=10, alpha=30, N=5, "
     "L=2: at most N*N*L = 50); use --groups-num <= 10, or change --N / --L"),
]


@pytest.mark.parametrize(("extra", "message"), [row[1:] for row in TOO_SMALL], ids=[row[0] for row in TOO_SMALL])
def test_options_too_large_for_the_city_are_refused_naming_the_option(
        extra: list[str], message: str, tiny_city: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Refused before the first step; the run folder the command made is removed again (nothing was in it)."""
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))
    runs = tmp_path / "runs"
    code = main(["train", str(tiny_city), "--runs-root", str(runs), *README_TRAIN, *extra])
    out, err = capsys.readouterr()
    assert code == 2
    assert [line for line in err.splitlines() if line.startswith("error: ")] == [
        message.format(city=tiny_city.absolute())]
    assert "Traceback" not in out + err
    assert "the run stopped before writing anything in it" in out
    assert list(runs.iterdir()) == []


def _setup_python_check() -> str:
    """The Python code scripts/setup.sh runs to check the interpreter's version."""
    setup = (Path(__file__).parents[1] / "scripts" / "setup.sh").read_text()
    line = next(line for line in setup.splitlines() if line.startswith('"$python" -c '))
    return line.split("'")[1]


@pytest.mark.parametrize(("version", "refused"), [((3, 10, 14), True), ((3, 11, 7), False), ((3, 12, 1), False),
                                                  ((3, 13, 0), False), ((3, 14, 0), True)],
                         ids=["3.10", "3.11", "3.12", "3.13", "3.14"])
def test_setup_takes_python_3_11_to_3_13_and_names_them_otherwise(version: tuple[int, int, int],
                                                                    refused: bool) -> None:
    """Set-up refuses another Python with one sentence naming the versions to install (before: a bare
    AssertionError on 3.12)."""
    text = ".".join(map(str, version))
    fake = f"import sys; sys.version_info = {version}; sys.version = '{text} (fake)'\n"
    done = subprocess.run([sys.executable, "-c", fake + _setup_python_check()], capture_output=True, text=True)
    if refused:
        assert (done.returncode, done.stderr) == (1, "cosplace-xs needs Python 3.11, 3.12 or 3.13 (the versions its "
                                                     f"pinned torch 2.14.1 stack is tested on); found {text}: install "
                                                     "one of them and run this again\n")
    else:
        assert (done.returncode, done.stderr) == (0, "")
