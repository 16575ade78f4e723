"""Checkpoints: written atomically (temp file, fsync, rename: `atomic_files`), read safely (weights_only, no pickle
code)."""

from __future__ import annotations

import errno
import logging
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from cosplace_xs.atomic_files import replacing
from cosplace_xs.errors import CheckpointError

log = logging.getLogger(__name__)

FORMAT = "cosplace-xs/1"
LAST = "last.pt"
PREVIOUS = "previous.pt"
BEST = "best.pt"
WHAT_A_CHECKPOINT_IS = (f"a checkpoint is the {LAST} or {BEST} that `cosplace-xs train` writes in its run folder; "
                        "pass one of them, or the run folder itself")


def _underlying_fault(error: BaseException) -> BaseException | None:
    """The OSError or KeyboardInterrupt behind `error`: torch.save's zip writer turns a failed write of its file
    (a full disk, Ctrl-C) into its own RuntimeError ("[enforce fail at inline_container.cc]") raised while the
    real fault is being handled, so the real one is found in the exception's context."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, (OSError, KeyboardInterrupt)):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _write_failed(path: Path, error: OSError, had_previous: bool) -> CheckpointError:
    reason = f"the disk is full ({error.strerror})" if error.errno in (errno.ENOSPC, errno.EDQUOT) \
        else (error.strerror or str(error))
    kept = f"the previous checkpoint {path} is intact" if had_previous else "no checkpoint was written before"
    return CheckpointError(f"{path}: could not write the checkpoint: {reason}; {kept}. Free space, then continue "
                           f"with: cosplace-xs train --resume {path.parent}")


def _remove_stale_temp_files(path: Path) -> None:
    """Temp files of `path` that a process killed while writing it left behind (kill -9, power loss): a run
    folder has one training process (its lock), so no other write is in progress."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        log.info("removing %s, left by a checkpoint write that never finished", stale)
        stale.unlink(missing_ok=True)


def write_checkpoint(state: dict[str, Any], path: Path, keep_previous: bool = False) -> None:
    """Write `state` to `path` so that a crash at any moment leaves a complete file at `path` or its previous.

    With `keep_previous`, the file being replaced is kept as `previous.pt` beside it. A failed write (disk full,
    permissions) is a CheckpointError naming the intact checkpoint; an interrupted one stays a KeyboardInterrupt;
    the temp file is removed either way, and a written one also removes those a killed process left.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    had_previous = path.is_file()
    try:
        with replacing(path, "wb", keep_as=path.with_name(PREVIOUS) if keep_previous else None) as file:
            torch.save({"format": FORMAT, **state}, file)
    except BaseException as error:
        fault = _underlying_fault(error)
        if isinstance(fault, OSError):  # the file at `path` is still the complete old one
            raise _write_failed(path, fault, had_previous) from error
        if isinstance(fault, KeyboardInterrupt) and fault is not error:
            log.warning("interrupted while writing %s; %s", path,
                        f"the previous checkpoint {path} is intact" if had_previous else "nothing was written")
            raise KeyboardInterrupt from None
        raise
    _remove_stale_temp_files(path)


def _load(path: Path) -> Any:
    """torch.load without unpickling code; any file that is not a torch file is a CheckpointError."""
    try:
        with warnings.catch_warnings():  # bytes that are no pickle at all may claim any pickle protocol
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        unsafe = re.search(r"(?:Unsupported global:|unsupported GLOBAL) ([^\n]*)", str(error))
        if unsafe is not None:
            raise CheckpointError(
                f"{path}: refused to load: it asks to run code ({unsafe.group(1).strip()}). Checkpoints are never "
                "unpickled with arbitrary code; only load files written by cosplace-xs"
            ) from None
        what = "not a torch file"
    except Exception:  # parsing foreign bytes fails in any way: KeyError, IndexError, struct.error, ...
        what = "a zip archive that is not a torch file" if zipfile.is_zipfile(path) else "not a torch file"
    raise CheckpointError(f"{path}: corrupted or truncated checkpoint, or not a checkpoint at all ({what}); "
                          f"{WHAT_A_CHECKPOINT_IS}")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint without running any pickled code; errors name the file and the way out."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; pass a checkpoint file (e.g. {path / BEST})")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    state = _load(path)
    _check_crcs(path)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a cosplace-xs checkpoint (a torch file of a {type(state).__name__}); "
                              f"{WHAT_A_CHECKPOINT_IS}")
    if state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cosplace-xs checkpoint (a torch file of a dict without the "
                              f"'{FORMAT}' format tag); {WHAT_A_CHECKPOINT_IS}")
    return state


def _check_crcs(path: Path) -> None:
    """Compare every stored entry with the CRC-32 written beside it: bytes damaged inside the tensor data leave
    the zip structure intact and would otherwise load as silently wrong weights."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path}: corrupted or truncated checkpoint ({error})") from None
    if damaged is not None:
        raise CheckpointError(f"{path}: corrupted checkpoint (entry {damaged} fails its CRC check)")


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or the best (else last) checkpoint of a run folder."""
    path = Path(path)
    if path.is_dir():
        for name in (BEST, LAST):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: run folder holds neither {BEST} nor {LAST}")
    return path


def non_finite_weights(state: dict[str, Any], classifiers: bool = True) -> list[str]:
    """The names of the model's (and group classifiers') tensors in a checkpoint state that hold a NaN or an
    infinity: weights a diverged run left, never written nor evaluated."""
    tensors = {f"model.{key}": value for key, value in state.get("model", {}).items()}
    for index, classifier in enumerate(state.get("classifiers", []) if classifiers else []):
        tensors.update({f"classifier{index}.{key}": value for key, value in classifier.items()})
    return [name for name, value in tensors.items()
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all()]
