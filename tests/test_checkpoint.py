"""Checkpoints: atomic writes, a kept previous file, clear errors, and no unpickling of code."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from cosplace_xs.errors import CheckpointError
from cosplace_xs.training import checkpoint as ckpt


def test_round_trip_and_format_tag(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    ckpt.write_checkpoint({"model": {"w": torch.arange(3.0)}, "epoch": 2}, path)
    state = ckpt.read_checkpoint(path)
    assert state["format"] == ckpt.FORMAT
    assert state["epoch"] == 2
    assert torch.equal(state["model"]["w"], torch.arange(3.0))


def test_keep_previous_rotates_the_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / ckpt.LAST
    ckpt.write_checkpoint({"epoch": 1}, path, keep_previous=True)
    ckpt.write_checkpoint({"epoch": 2}, path, keep_previous=True)
    assert ckpt.read_checkpoint(path)["epoch"] == 2
    assert ckpt.read_checkpoint(tmp_path / ckpt.PREVIOUS)["epoch"] == 1


def test_failed_write_leaves_old_checkpoint_and_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / ckpt.LAST
    ckpt.write_checkpoint({"epoch": 1}, path)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(path))}: could not write .*No space.*--resume"):
        ckpt.write_checkpoint({"epoch": 2}, path, keep_previous=True)
    monkeypatch.undo()
    assert ckpt.read_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.LAST]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_checkpoint_is_a_clear_error_naming_the_file(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "last.pt"
    ckpt.write_checkpoint({"model": {"w": torch.randn(1000)}}, path)
    data = path.read_bytes()
    damaged = {"truncate": data[: len(data) // 2], "garbage": b"\x00junk" * 100, "empty": b""}[damage]
    path.write_bytes(damaged)
    with pytest.raises(CheckpointError, match=r"last\.pt: corrupted or truncated"):
        ckpt.read_checkpoint(path)


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": ckpt.FORMAT, "model": _RunsCode(marker)}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        ckpt.read_checkpoint(path)
    assert not marker.exists()


def test_foreign_file_and_missing_file(tmp_path: Path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a cosplace-xs checkpoint"):
        ckpt.read_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not found"):
        ckpt.read_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"neither best\.pt nor last\.pt"):
        ckpt.resolve_checkpoint(tmp_path)


def test_resolve_prefers_best(tmp_path: Path) -> None:
    ckpt.write_checkpoint({}, tmp_path / ckpt.LAST)
    assert ckpt.resolve_checkpoint(tmp_path) == tmp_path / ckpt.LAST
    ckpt.write_checkpoint({}, tmp_path / ckpt.BEST)
    assert ckpt.resolve_checkpoint(tmp_path) == tmp_path / ckpt.BEST
