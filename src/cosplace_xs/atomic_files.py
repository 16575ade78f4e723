"""Files replaced in one step: written to a temporary file beside them, flushed to disk, then renamed over.

A crash, a kill -9 or a full disk at any moment leaves either the old file or the new one under the final
name, never half of one. The file gets the mode of any file the user creates (0o666 less the umask), not the
temporary file's 0o600, so a group sharing run folders can read it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def replacing(path: Path, mode: str = "w", keep_as: Path | None = None) -> Iterator[IO]:
    """An open temporary file that replaces `path` when the block ends without error (and is removed if not).

    `keep_as`: the file being replaced is first renamed to this name, so a reader finds the old one there."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, 0o666 & ~_umask())
        if keep_as is not None and path.exists():
            os.replace(path, keep_as)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_folder(path.parent)  # the rename itself survives a power loss only once the folder is on disk


def write_text_atomic(path: Path, text: str) -> None:
    """Replace a text file in one step."""
    with replacing(path) as file:
        file.write(text)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    current = os.umask(0)  # the only way to read it; set back at once
    os.umask(current)
    return current
