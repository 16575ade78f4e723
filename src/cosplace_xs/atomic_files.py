"""Files replaced in one step: written to a temporary file beside them, flushed to disk, then renamed over.

A crash, a kill -9 or a full disk at any moment leaves either the old file or the new one under the final
name, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def replacing(path: Path, mode: str = "w") -> Iterator[IO]:
    """An open temporary file that replaces `path` when the block ends without error (and is removed if not)."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Replace a text file in one step."""
    with replacing(path) as file:
        file.write(text)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
