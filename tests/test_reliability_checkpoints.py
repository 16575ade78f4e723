"""Damaged, malicious and unwritable checkpoints: a clear error naming the file, a fall back to previous.pt
only when one is kept (and said so), never any pickled code run, and a full disk that costs nothing."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import signal
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cosplace_xs import checkpoints as ckpt
from cosplace_xs.cli import main
from cosplace_xs.errors import CheckpointError
from cosplace_xs.training import run_files


@pytest.fixture(autouse=True)
def _split_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _overwrite_weights(path: Path) -> None:
    """64 bytes in the middle of the file: inside the tensor data, the zip structure left intact."""
    with path.open("r+b") as file:
        file.seek(path.stat().st_size // 2)
        file.write(b"\xaa" * 64)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": _truncate,
    "bytes overwritten in the weights": _overwrite_weights,
    "emptied": lambda path: path.write_bytes(b""),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_training_checkpoint_is_a_clear_error_naming_the_file(damage: str, reference_run: Path,
                                                                        tmp_path: Path) -> None:
    path = tmp_path / ckpt.LAST
    shutil.copy(reference_run / ckpt.LAST, path)
    DAMAGE[damage](path)
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(path))}: corrupted"):
        ckpt.read_checkpoint(path)


@pytest.fixture
def run_copy(reference_run: Path, tmp_path: Path) -> Path:
    """A copy of the finished reference run (last.pt at the end, previous.pt at epoch 2 batch 2)."""
    return Path(shutil.copytree(reference_run, tmp_path / "run"))


def test_resume_falls_back_to_previous_says_so_and_reproduces_the_run(run_copy: Path, cosplace_cli, reference_run,
                                                                      assert_same_weights) -> None:
    last, previous = run_copy / ckpt.LAST, run_copy / ckpt.PREVIOUS
    _truncate(last)
    resumed = cosplace_cli("train", "--resume", run_copy, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    said = f"{last}: corrupted or truncated checkpoint"
    fallback = f"resuming from the previous checkpoint {previous} instead"
    log = (run_copy / run_files.LOG).read_text()
    for text in (resumed.stderr, log):
        assert said in text and fallback in text
    assert f"resumed {previous} at epoch 2, iteration 2" in resumed.stderr
    assert_same_weights(run_copy, reference_run)


@pytest.mark.parametrize("previous_state", ["not kept", "damaged too"])
def test_resume_without_a_good_previous_checkpoint_is_a_clear_error(previous_state: str, run_copy: Path,
                                                                    capsys) -> None:
    last, previous = run_copy / ckpt.LAST, run_copy / ckpt.PREVIOUS
    _truncate(last)
    if previous_state == "not kept":
        previous.unlink()
    else:
        _overwrite_weights(previous)
    damaged = last.read_bytes()

    assert main(["train", "--resume", str(run_copy), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    named = last if previous_state == "not kept" else previous
    assert re.search(rf"^error: {re.escape(str(named))}: corrupted", err, re.MULTILINE), err
    if previous_state == "damaged too":
        assert f"{last}: corrupted or truncated checkpoint" in (run_copy / run_files.LOG).read_text()
    assert last.read_bytes() == damaged, "nothing is written over the damaged checkpoint"


class _RunsCode:
    """Unpickling this runs `touch marker`: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _write_malicious(path: Path, marker: Path, form: str) -> None:
    payload = {"format": ckpt.FORMAT, "config": {}, "model": _RunsCode(marker)}
    path.parent.mkdir(parents=True, exist_ok=True)
    if form == "torch zip":
        torch.save(payload, path)
    elif form == "torch legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload))


@pytest.mark.parametrize("form", ["torch legacy", "plain pickle"])
def test_a_malicious_pickle_in_any_file_format_is_refused(form: str, tmp_path: Path) -> None:
    marker, path = tmp_path / "marker", tmp_path / "evil.pt"
    _write_malicious(path, marker, form)
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(path))}: (refused to load|corrupted)"):
        ckpt.read_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("command", ["train --resume", "eval --checkpoint file", "eval --checkpoint run folder",
                                     "predict --checkpoint"])
def test_every_command_refuses_a_malicious_checkpoint(command: str, tiny_city: Path, reference_run: Path,
                                                      tmp_path: Path, capsys) -> None:
    marker, run_dir = tmp_path / "marker", tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(reference_run / run_files.CONFIG, run_dir / run_files.CONFIG)
    evil = run_dir / (ckpt.LAST if command == "train --resume" else ckpt.BEST)
    _write_malicious(evil, marker, "torch zip")
    test_set = str(tiny_city / "test")
    argv = {
        "train --resume": ["train", "--resume", str(run_dir)],
        "eval --checkpoint file": ["eval", test_set, "--checkpoint", str(evil)],
        "eval --checkpoint run folder": ["eval", test_set, "--checkpoint", str(run_dir)],
        "predict --checkpoint": ["predict", str(next((tiny_city / "test" / "queries").iterdir())),
                                 "--checkpoint", str(evil), "--database", str(tiny_city / "test" / "database")],
    }[command]
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"error: {evil}: refused to load: it asks to run code" in err
    assert not marker.exists()


def test_a_full_disk_while_checkpointing_keeps_the_checkpoints_and_loses_nothing(
        cosplace_cli, tiny_train_args, reference_run: Path, assert_same_weights, tmp_path: Path) -> None:
    """No space left with 1 MiB of epoch 2's mid-epoch last.pt written (the 4th checkpoint file), the fault raised
    by the file's own write under torch.save, which reports it as a RuntimeError of its zip writer."""
    run_dir = tmp_path / "run"
    failed = cosplace_cli(*tiny_train_args, "--run-dir", run_dir, fault="disk-full-in-save:4")
    assert failed.returncode not in (0, -signal.SIGKILL), failed.stderr
    last, previous = ckpt.read_checkpoint(run_dir / ckpt.LAST), ckpt.read_checkpoint(run_dir / ckpt.PREVIOUS)
    assert (last["epoch"], last["iteration"]) == (1, 0)
    assert (previous["epoch"], previous["iteration"]) == (0, 2)
    assert not list(run_dir.glob(".*.tmp")), "the half-written temp file is removed"

    resumed = cosplace_cli("train", "--resume", run_dir, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(run_dir, reference_run)

    assert "Traceback" not in failed.stderr, "a full disk is a user-facing error, not a crash"
    assert failed.returncode == 2
    last_path = run_dir / ckpt.LAST
    assert [line for line in failed.stderr.splitlines() if line.startswith("error: ")] == [
        f"error: {last_path}: could not write the checkpoint: the disk is full (No space left on device); the "
        f"previous checkpoint {last_path} is intact. Free space, then continue with: cosplace-xs train --resume "
        f"{run_dir}"], failed.stderr[-3000:]
    assert "inline_container" not in failed.stderr


def _write_zip_that_is_not_torch(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not a checkpoint")


# case -> (how the file is made, the message after "error: FILE: ")
NOT_A_CHECKPOINT: dict[str, tuple[Callable[[Path], None], str]] = {
    "text file": (lambda path: path.write_text("hello world\n"),
                  "corrupted or truncated checkpoint, or not a checkpoint at all (not a torch file)"),
    "random bytes": (lambda path: path.write_bytes(bytes(range(256)) * 8),
                     "corrupted or truncated checkpoint, or not a checkpoint at all (not a torch file)"),
    "one byte": (lambda path: path.write_bytes(b"\x80"),
                 "corrupted or truncated checkpoint, or not a checkpoint at all (not a torch file)"),
    "zip that is not a torch file": (_write_zip_that_is_not_torch,
                                     "corrupted or truncated checkpoint, or not a checkpoint at all (a zip archive "
                                     "that is not a torch file)"),
    "torch file of a plain tensor": (lambda path: torch.save(torch.zeros(3), path),
                                     "not a cosplace-xs checkpoint (a torch file of a Tensor)"),
    "torch file of a state dict": (lambda path: torch.save({"weight": torch.zeros(3)}, path),
                                   f"not a cosplace-xs checkpoint (a torch file of a dict without the "
                                   f"'{ckpt.FORMAT}' format tag)"),
    "checkpoint without model and config": (lambda path: torch.save({"format": ckpt.FORMAT, "epoch": 1}, path),
                                            "holds no config and no model; it is not a model checkpoint"),
}


@pytest.mark.parametrize("case", list(NOT_A_CHECKPOINT))
def test_eval_of_a_file_that_is_not_a_checkpoint_is_a_clear_error(case: str, tiny_city: Path, tmp_path: Path,
                                                                  capsys) -> None:
    make, message = NOT_A_CHECKPOINT[case]
    path = tmp_path / "given" / "model.pt"
    path.parent.mkdir()
    make(path)
    written = path.read_bytes()

    assert main(["eval", str(tiny_city / "test"), "--checkpoint", str(path), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {path}: {message}; {ckpt.WHAT_A_CHECKPOINT_IS}"]
    assert path.read_bytes() == written, "the file given is left as it was"
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"], "nothing written beside it"
