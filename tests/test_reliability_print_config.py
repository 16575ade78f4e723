"""`train --print-config` given bad input: the same one-line error as `train` itself, and no folder touched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cosplace_xs.cli import main


def _nothing(root: Path) -> None:
    return None


def _unknown_key(root: Path) -> None:
    (root / "options.yaml").write_text("train:\n  epochs: 2\n  bogus: 1\n")


# case id: how the bad input is made, argv (ROOT = the test's folder), exit code, message fragment
CASES: dict[str, tuple[Callable[[Path], None], list[str], int, str]] = {
    "flag out of range": (_nothing, ["train", "ROOT", "--epochs", "0", "--print-config"], 2,
                          "option --epochs=0 is out of range: >= 1"),
    "--config file missing": (_nothing, ["train", "ROOT", "--config", "ROOT/missing.yaml", "--print-config"], 2,
                              "ROOT/missing.yaml: configuration file not found"),
    "--config with an unknown option": (_unknown_key, ["train", "ROOT", "--config", "ROOT/options.yaml",
                                                       "--print-config"], 2,
                                        "ROOT/options.yaml: unknown option(s) ['bogus'] in 'train'"),
    "--resume of a folder that holds no run": (_nothing, ["train", "--resume", "ROOT/nowhere", "--print-config"], 2,
                                               "--resume ROOT/nowhere: no config.yaml there; is it a run folder?"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_print_config_refuses_bad_options_and_touches_no_folder(case: str, tmp_path: Path, capsys,
                                                               monkeypatch) -> None:
    make, argv, expected_code, fragment = CASES[case]
    monkeypatch.chdir(tmp_path)  # where a default runs/ folder would appear
    make(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    code = main([arg.replace("ROOT", str(tmp_path)) for arg in argv])
    captured = capsys.readouterr()
    assert code == expected_code
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and fragment.replace("ROOT", str(tmp_path)) in errors[0], captured.err
    assert "Traceback" not in captured.out + captured.err
    assert captured.out == ""  # no partial configuration printed
    assert sorted(tmp_path.rglob("*")) == before
