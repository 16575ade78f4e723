"""Checkpoints: atomic writes, a kept previous file, clear errors, and no unpickling of code."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
from pathlib import Path

import pytest
import torch

from cosplace_xs import checkpoints as ckpt
from cosplace_xs.config import RunConfig
from cosplace_xs.errors import CheckpointError
from cosplace_xs.training import run_files


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


class _FillingDisk(io.FileIO):
    """A file on a disk that has room for `room` bytes: further writes fail as the kernel's would."""

    def __init__(self, fd: int, room: int, fault: BaseException) -> None:
        super().__init__(fd, "wb")
        self.room, self.fault = room, fault

    def write(self, data) -> int:
        if self.tell() + len(data) > self.room:
            raise self.fault
        return super().write(data)


def _fill_the_disk_at(monkeypatch, room: int, fault: BaseException) -> None:
    """The checkpoint's temp file opened as on a filling disk, buffered as os.fdopen buffers it, so the fault
    reaches torch.save's zip writer the way a real one does (it wraps it in its own RuntimeError)."""
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: io.BufferedWriter(_FillingDisk(fd, room, fault)))


def test_the_fault_injected_below_is_the_one_torch_save_raises(tmp_path: Path, monkeypatch) -> None:
    """What a full disk looks like from above torch.save: not an OSError but the zip writer's RuntimeError."""
    _fill_the_disk_at(monkeypatch, 4096, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    file = os.fdopen(os.open(tmp_path / "x.pt", os.O_WRONLY | os.O_CREAT), "wb")
    with pytest.raises(RuntimeError, match=r"enforce fail at inline_container") as raised:
        torch.save({"w": torch.zeros(10_000)}, file)
    with contextlib.suppress(OSError):  # the rest of the buffer does not fit either
        file.close()
    assert isinstance(raised.value.__context__, OSError)


@pytest.mark.parametrize("earlier", ["previous checkpoint", "no previous checkpoint"])
def test_a_full_disk_is_a_clear_error_naming_the_intact_checkpoint_and_leaves_no_temp_file(
        earlier: str, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / ckpt.LAST
    if earlier == "previous checkpoint":
        ckpt.write_checkpoint({"epoch": 1}, path)
    _fill_the_disk_at(monkeypatch, 4096, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    with pytest.raises(CheckpointError) as raised:
        ckpt.write_checkpoint({"epoch": 2, "w": torch.zeros(10_000)}, path, keep_previous=True)
    monkeypatch.undo()
    kept = f"the previous checkpoint {path} is intact" if earlier == "previous checkpoint" \
        else "no checkpoint was written before"
    assert str(raised.value) == (
        f"{path}: could not write the checkpoint: the disk is full (No space left on device); {kept}. Free space, "
        f"then continue with: cosplace-xs train --resume {tmp_path}")
    if earlier == "previous checkpoint":
        assert ckpt.read_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ([ckpt.LAST] if earlier == "previous checkpoint" else [])


def test_an_interrupted_write_stays_an_interruption_and_leaves_the_previous_checkpoint(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    path = tmp_path / ckpt.LAST
    ckpt.write_checkpoint({"epoch": 1}, path)
    _fill_the_disk_at(monkeypatch, 4096, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        ckpt.write_checkpoint({"epoch": 2, "w": torch.zeros(10_000)}, path, keep_previous=True)
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


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_run_files_take_the_users_umask(umask: int, tmp_path: Path) -> None:
    """config.yaml, last.pt (and the previous.pt it keeps) and best.pt are readable by whom the umask says, e.g.
    the group sharing a cluster's run folders (0o002), not only by their owner."""
    previous = os.umask(umask)
    try:
        run_files.save_config(tmp_path, RunConfig())
        ckpt.write_checkpoint({"epoch": 1}, tmp_path / ckpt.LAST, keep_previous=True)
        ckpt.write_checkpoint({"epoch": 2}, tmp_path / ckpt.LAST, keep_previous=True)
        ckpt.write_checkpoint({"epoch": 2}, tmp_path / ckpt.BEST)
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in tmp_path.iterdir()}
    assert modes == dict.fromkeys(["config.yaml", ckpt.LAST, ckpt.PREVIOUS, ckpt.BEST], 0o666 & ~umask)
