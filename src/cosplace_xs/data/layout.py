"""Dataset folders as users have them: `<root>/train`, `<root>/{val,test}/{database,queries}`."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cosplace_xs.data.names import IMAGE_EXTENSIONS
from cosplace_xs.errors import DatasetLayoutError

log = logging.getLogger(__name__)

QUERY_FOLDER_NAMES = ("queries", "queries_v1")


@dataclass(frozen=True)
class TestSetPaths:
    """A retrieval test set: a database folder and a queries folder."""

    name: str
    database_dir: Path
    queries_dir: Path


@dataclass(frozen=True)
class DatasetPaths:
    """The folders of a dataset root; any of them may be absent."""

    root: Path
    train_dir: Path | None
    val: TestSetPaths | None
    test: TestSetPaths | None


def _walk(folder: Path) -> tuple[list[Path], list[Path]]:
    """All files under `folder`, following symlinked folders once each (so a symlink loop ends)."""
    files: list[Path] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            log.warning("%s: folder already visited through another path (symlink loop?); skipped", dirpath)
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        files.extend(Path(dirpath) / f for f in filenames)
    images = [f for f in files if f.suffix.lower() in IMAGE_EXTENSIONS]
    others = [f for f in files if f.suffix.lower() not in IMAGE_EXTENSIONS]
    return sorted(images, key=lambda p: p.as_posix()), sorted(others)


def list_images(folder: str | Path, what: str = "images") -> list[Path]:
    """The images (.jpg, .jpeg, .png, any depth) under `folder`, sorted by path.

    Raises DatasetLayoutError if the folder is missing or holds no image; warns about other files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetLayoutError(f"{folder}: folder of {what} not found; expected a folder of .jpg images")
    images, others = _walk(folder)
    if others:
        shown = ", ".join(p.name for p in others[:5])
        log.warning("%s: ignored %d non-image files (%s%s)", folder, len(others), shown,
                    ", ..." if len(others) > 5 else "")
    if not images:
        raise DatasetLayoutError(
            f"{folder}: holds no image ({', '.join(IMAGE_EXTENSIONS)}); expected the {what} of the dataset"
        )
    return images


def _queries_dir(folder: Path) -> Path | None:
    for name in QUERY_FOLDER_NAMES:
        if (folder / name).is_dir():
            return folder / name
    return None


def find_test_set(path: str | Path, split: str = "test") -> TestSetPaths:
    """Resolve a test set given as `<set>/{database,queries}` or as a dataset root holding `<split>/`."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetLayoutError(f"{path}: test set folder not found")
    for folder in (path, path / split):
        queries = _queries_dir(folder)
        if (folder / "database").is_dir() and queries is not None:
            name = path.name if folder == path / split else f"{path.parent.name}/{path.name}"
            return TestSetPaths(name=name.strip("/"), database_dir=folder / "database", queries_dir=queries)
    raise DatasetLayoutError(
        f"{path}: not a test set; expected the folders {path}/database and {path}/queries "
        f"(or {path}/{split}/database and {path}/{split}/queries)"
    )


def discover_dataset(root: str | Path) -> DatasetPaths:
    """Find the train, val and test folders of a dataset root (e.g. `sf_xs/`)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"{root}: dataset folder not found")
    train = root / "train"
    sets = {}
    for split in ("val", "test"):
        try:
            sets[split] = find_test_set(root / split) if (root / split).is_dir() else None
        except DatasetLayoutError:
            log.warning("%s/%s: present but without database/ and queries/; ignored", root, split)
            sets[split] = None
    paths = DatasetPaths(root=root, train_dir=train if train.is_dir() else None, **sets)
    if paths.train_dir is None and paths.val is None and paths.test is None:
        raise DatasetLayoutError(
            f"{root}: no train/, val/ or test/ folder; expected {root}/train/**.jpg and "
            f"{root}/{{val,test}}/{{database,queries}}/**.jpg"
        )
    return paths


def require_train_dir(paths: DatasetPaths) -> Path:
    """The train folder of a dataset, or an error saying where it was looked for."""
    if paths.train_dir is None:
        raise DatasetLayoutError(f"{paths.root}: no train/ folder; training needs {paths.root}/train/**.jpg")
    return paths.train_dir
