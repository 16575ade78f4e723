"""On-disk cache of CosPlace splits, keyed by everything the split depends on.

The official code names its cache after the folder and a few options, so a change of alpha or L, or of
the images, silently reuses a stale split. Here the key hashes every split option and the sorted list of
image paths (relative to the train folder) with each file's size and mtime_ns.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from cosplace_xs.config import SplitConfig
from cosplace_xs.errors import DatasetLayoutError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CACHE_ENV = "COSPLACE_XS_CACHE"


def default_cache_dir() -> Path:
    """`$COSPLACE_XS_CACHE/splits`, else `~/.cache/cosplace-xs/splits`."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "cosplace-xs") / "splits"


def split_options(config: SplitConfig) -> dict[str, int | str]:
    """The options that change classes or groups (groups_num only picks how many groups are trained)."""
    options: dict[str, int | str] = {"M": config.M, "alpha": config.alpha, "N": config.N, "L": config.L,
                                     "min_images_per_class": config.min_images_per_class}
    if config.heading_360 != "merge":  # named only when not the default, so that existing keys stay valid
        options["heading_360"] = config.heading_360
    return options


def _sha256(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()


def split_key(config: SplitConfig, relative_paths: list[str]) -> str:
    """Hash of what the split is a function of: its options and the image names (which carry the metadata)."""
    return _sha256([FORMAT_VERSION, split_options(config), relative_paths])


def cache_key(config: SplitConfig, relative_paths: list[str], paths: list[Path]) -> str:
    """Hash of the split options and every image's relative path, size and mtime_ns."""
    files = []
    for relative, path in zip(relative_paths, paths, strict=True):
        try:
            stat = path.stat()
        except OSError as error:
            raise DatasetLayoutError(
                f"{path}: cannot be read ({error.strerror}); run `cosplace-xs check-dataset` on the folder"
            ) from None
        files.append([relative, stat.st_size, stat.st_mtime_ns])
    return _sha256([FORMAT_VERSION, split_options(config), files])


def cache_file(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"split-{key[:16]}.json"


def read_cache(cache_dir: Path, key: str) -> dict[str, Any] | None:
    """The cached split of `key`, or None when absent; a corrupt or foreign file is ignored with a warning."""
    path = cache_file(cache_dir, key)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        log.warning("%s: unreadable split cache (%s); rebuilding the split", path, error)
        return None
    if not isinstance(data, dict) or data.get("key") != key or data.get("version") != FORMAT_VERSION:
        log.warning("%s: split cache of another key or format version; rebuilding the split", path)
        return None
    return data


def write_cache(cache_dir: Path, key: str, data: dict[str, Any]) -> Path | None:
    """Write atomically (temporary file, then os.replace); a cache that cannot be written is only a warning."""
    path = cache_file(cache_dir, key)
    tmp_name = None
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=cache_dir, prefix=path.name, suffix=".tmp", delete=False) as tmp:
            tmp_name = tmp.name
            json.dump({"version": FORMAT_VERSION, "key": key, **data}, tmp, separators=(",", ":"))
        os.replace(tmp_name, path)
    except OSError as error:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        log.warning("%s: cannot write the split cache (%s); continuing without it", path, error)
        return None
    return path
