"""Checkpoints: written atomically (temp file, fsync, rename), read safely (weights_only, no pickle code)."""

from __future__ import annotations

import logging
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from cosplace_xs.errors import CheckpointError

log = logging.getLogger(__name__)

FORMAT = "cosplace-xs/1"
LAST = "last.pt"
PREVIOUS = "previous.pt"
BEST = "best.pt"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(state: dict[str, Any], path: Path, keep_previous: bool = False) -> None:
    """Write `state` to `path` so that a crash at any moment leaves a complete file at `path` or its previous.

    With `keep_previous`, the file being replaced is kept as `previous.pt` beside it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save({"format": FORMAT, **state}, file)
            file.flush()
            os.fsync(file.fileno())
        if keep_previous and path.exists():
            os.replace(path, path.with_name(PREVIOUS))
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as error:  # disk full, quota, permissions: the file at `path` is still the complete old one
        tmp.unlink(missing_ok=True)
        raise CheckpointError(
            f"{path}: could not write the checkpoint ({error.strerror or error}); the previous checkpoint is "
            "intact. Free space (or fix the folder's permissions) and continue with --resume"
        ) from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint without running any pickled code; errors name the file and the way out."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; pass a checkpoint file (e.g. {path / BEST})")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        unsafe = re.search(r"(?:Unsupported global:|unsupported GLOBAL) ([^\n]*)", str(error))
        if unsafe is None:
            raise CheckpointError(f"{path}: corrupted or truncated checkpoint (not a readable torch file)") from None
        raise CheckpointError(
            f"{path}: refused to load: it asks to run code ({unsafe.group(1).strip()}). Checkpoints are never "
            "unpickled with arbitrary code; only load files written by cosplace-xs"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as error:
        raise CheckpointError(f"{path}: corrupted or truncated checkpoint ({error})") from None
    _check_crcs(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cosplace-xs checkpoint (no '{FORMAT}' format tag)")
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
