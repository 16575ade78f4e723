"""`<folder>_images_paths.txt`: the list of a folder's images, beside the folder, read instead of walking it.

One path a line, relative to the folder, as the official CosPlace, EigenPlaces and VPR-methods-evaluation code
read it (`dataset_folder + "/" + line`); a file whose paths start at the folder's parent (`database/...`) is read
too. On a database of millions of files, reading the list takes seconds where walking the folder takes minutes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cosplace_xs.atomic_files import write_text_atomic
from cosplace_xs.errors import DatasetLayoutError

log = logging.getLogger(__name__)

PATHS_FILE_SUFFIX = "_images_paths.txt"
MISSING_SHOWN = 5


def paths_file(folder: Path) -> Path:
    """The file beside `folder` that may list its images: `<folder>_images_paths.txt`."""
    return folder.parent / (folder.name + PATHS_FILE_SUFFIX)


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path` lies below `folder`, compared lexically (`..` resolved, links not followed)."""
    path_text, folder_text = os.path.normpath(path), os.path.normpath(folder)
    return path_text.startswith(folder_text.rstrip(os.sep) + os.sep)


def read_paths_file(folder: Path, what: str = "images") -> list[Path]:
    """The images `paths_file(folder)` lists, each checked to exist inside `folder`, sorted by path.

    Lines are relative to the folder, as the official code writes them; a file whose first line is found only
    relative to the folder's parent (`database/...`) is read that way."""
    listing = paths_file(folder)
    lines = [line for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
    base = folder
    if lines and not (folder / lines[0]).exists() and (folder.parent / lines[0]).exists():
        base = folder.parent
    paths = []
    for number, line in enumerate(lines, start=1):
        path = Path(os.path.normpath(base / line))
        if not _inside(path, folder):
            raise DatasetLayoutError(f"{listing}: line {number}, {line}, lies outside {folder}; list only the "
                                     "images inside the folder, relative to it")
        paths.append(path)
    missing = [path for path in paths if not path.is_file()]
    if missing:
        shown = ", ".join(path.relative_to(folder).as_posix() for path in missing[:MISSING_SHOWN])
        raise DatasetLayoutError(
            f"{listing}: {len(missing)} of the {len(paths)} {what} it lists are missing from {folder}: {shown}"
            f"{', ...' if len(missing) > MISSING_SHOWN else ''}; write it again with `cosplace-xs check-dataset "
            "DIR --write-paths-files`, or delete it to walk the folder")
    log.info("%s: %d images listed in %s; the folder is not walked", folder, len(paths), listing)
    return sorted(paths, key=lambda p: p.as_posix())


def write_image_list(folder: Path, images: list[Path]) -> Path:
    """Write `images` (paths under `folder`) to the folder's `paths_file`, relative to it, atomically."""
    write_text_atomic(paths_file(folder), "".join(path.relative_to(folder).as_posix() + "\n" for path in images))
    return paths_file(folder)
