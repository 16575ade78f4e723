"""Image sets that a check found without any problem, remembered across starts: a run that starts again on
unchanged files (a resume, the next trial of a sweep, another run on the same city) does not decode every image
again. Files are compared by path, size and modification time, as the split cache compares them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from cosplace_xs.atomic_files import write_text_atomic
from cosplace_xs.data.split_cache import default_cache_dir

FORMAT_VERSION = 1


def scan_key(paths: Sequence[Path], require_heading: bool, max_pixels: int) -> str | None:
    """Hash of what a check of `paths` depends on: the options and every file's path, size and mtime_ns; None
    when a file cannot be read (the check itself reports it)."""
    files = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            return None
        files.append([str(path), stat.st_size, stat.st_mtime_ns])
    payload = [FORMAT_VERSION, require_heading, max_pixels, files]
    return hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()


def _marker(key: str, cache_dir: Path | None) -> Path:
    # beside the split cache: `$COSPLACE_XS_CACHE/scans`, else ~/.cache/cosplace-xs/scans
    return (cache_dir or default_cache_dir().parent / "scans") / f"clean-{key[:32]}"


def known_clean(key: str | None, cache_dir: Path | None = None) -> bool:
    """Whether the files of `key` were checked without any problem before."""
    return key is not None and _marker(key, cache_dir).is_file()


def remember_clean(key: str | None, cache_dir: Path | None = None) -> None:
    """Record that the files of `key` were checked without any problem; a cache that cannot be written only
    means the next start checks them again."""
    if key is None:
        return
    marker = _marker(key, cache_dir)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(marker, key + "\n")
    except OSError:
        pass
