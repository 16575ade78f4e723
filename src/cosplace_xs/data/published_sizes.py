"""The published sizes of the well-known test sets, to tell a complete download from a truncated one.

Counts as the CosPlace and VPR-methods-evaluation papers report them (queries, database images). A test set
folder is taken for one of them when a folder of its path names the dataset (`sf_xs`, `SF-XS`, `tokyo247`...,
compared without case, `_` or `-`) and the folder itself is the split (`test`, `val`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PublishedSet:
    """A well-known test set: its name, how its folders are named, and its published image counts."""

    name: str
    dataset: str  # a path folder's name without case, `_` or `-` contains this
    split: str  # the name of the folder that holds database/ and queries/
    queries: int
    database: int


PUBLISHED_SETS = (
    PublishedSet("SF-XS test", "sfxs", "test", 1_000, 27_191),
    PublishedSet("Tokyo-XS test", "tokyoxs", "test", 315, 12_771),
    PublishedSet("Pitts30k test", "pitts30k", "test", 6_816, 10_000),
    PublishedSet("MSLS val", "msls", "val", 740, 18_871),
    PublishedSet("Tokyo 24/7 test", "tokyo247", "test", 315, 75_984),
)


def _plain(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _in_synthetic_city(test_set_dir: Path) -> bool:
    """Whether a folder above `test_set_dir` holds the manifest of a synthetic city, whose `tokyo_xs/` is its
    own small stand-in for Tokyo-XS, not a download of it."""
    from cosplace_xs.synthetic.city import MANIFEST  # here: the renderer is not needed to read a dataset

    return any((folder / MANIFEST).is_file() for folder in Path(test_set_dir).absolute().parents)


def published_set(test_set_dir: Path) -> PublishedSet | None:
    """The well-known set whose database and queries `test_set_dir` holds, judged by its path, or None (also
    inside a synthetic city)."""
    if _in_synthetic_city(test_set_dir):
        return None
    folders = [_plain(part) for part in Path(test_set_dir).absolute().parts[:-1]]
    for known in PUBLISHED_SETS:
        if test_set_dir.name == known.split and any(known.dataset in folder for folder in folders):
            return known
    return None


def compare_counts(known: PublishedSet, queries: int, database: int) -> tuple[bool, str]:
    """(whether the counts are the published ones, a sentence saying so or how they differ)."""
    published = f"{known.queries:,} queries and {known.database:,} database images"
    if (queries, database) == (known.queries, known.database):
        return True, f"{known.name}: {published}, as published"
    found = f"{queries:,} queries and {database:,} database images"
    if queries < known.queries or database < known.database:
        return False, (f"{known.name} has {published} as published, this copy {found}: the download looks "
                       "truncated; download it again (or unpack it again) and check once more")
    return False, (f"{known.name} has {published} as published, this copy {found}: more than published; other "
                   "images were added to it, or this is another dataset named like it")
