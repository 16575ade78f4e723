"""CosPlace classes and groups (Berton et al., CVPR 2022, sec. 3.1; docs/architecture.md).

The map is cut into M x M metre cells and each cell's headings into alpha-degree sectors: one class per
(cell, sector). Classes whose cell indices agree modulo N and whose sector indices agree modulo L form a
group, so the classes of one group are at least N cells (or L sectors) apart and never see the same place.
Every split is cached on disk under a key of its options and images (see `split_cache`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosplace_xs.config import SplitConfig
from cosplace_xs.data import split_cache
from cosplace_xs.data.layout import list_images
from cosplace_xs.data.names import ImageName, display_name, parse_name
from cosplace_xs.errors import BadFileNameError, ConfigError, DatasetLayoutError
from cosplace_xs.options import flag_of

log = logging.getLogger(__name__)

ClassId = tuple[int, int, int]
GroupId = tuple[int, int, int]
BAD_NAMES_SHOWN = 20
ADVICE_STEPS = 3  # --min-images-per-class values suggested when every class is dropped
GROUPS_NUM_FLAG = flag_of(SplitConfig, "groups_num")
COUNTS = ("num_dropped_classes", "num_dropped_images", "num_headings")  # TrainSplit fields the cache stores


def compute_class_id(e: float, n: float, h: float, M: int, alpha: int, heading_360: str = "merge") -> ClassId:
    """Class (E, N_, H) = (floor(e/M)*M, floor(n/M)*M, floor(h/alpha)*alpha).

    heading_360 "merge" takes the heading modulo 360, so 360 degrees joins sector 0 (the same direction);
    "own_class" keeps it as the official code does (train_dataset.py: int(heading // alpha * alpha)), which makes
    360 a class of its own."""
    heading = h if heading_360 == "own_class" else h % 360
    return math.floor(e / M) * M, math.floor(n / M) * M, math.floor(heading / alpha) * alpha


def compute_group_id(class_id: ClassId, M: int, alpha: int, N: int, L: int) -> GroupId:
    """Group ((E mod M*N) div M, (N_ mod M*N) div M, (H mod alpha*L) div alpha) of a class."""
    E, N_, H = class_id
    return (E % (M * N)) // M, (N_ % (M * N)) // M, (H % (alpha * L)) // alpha


@dataclass(frozen=True)
class Group:
    """One CosPlace group: its classes (sorted by class id) and, per class, indices into `image_paths`."""

    group_id: GroupId
    class_ids: tuple[ClassId, ...]
    class_images: tuple[tuple[int, ...], ...]

    @property
    def num_images(self) -> int:
        return sum(len(images) for images in self.class_images)


@dataclass(frozen=True)
class TrainSplit:
    """The classes and groups of a train folder.

    `image_paths` holds only the images of kept classes (absolute, sorted); dropped classes are counted,
    not listed. `cache_key` changes with any file's size or mtime; `split_key` only with the options and
    image names, which is all the split depends on (it survives copying the dataset elsewhere).
    """

    train_dir: Path
    image_paths: tuple[Path, ...]
    groups: tuple[Group, ...]
    config: SplitConfig
    num_listed_images: int
    num_dropped_classes: int
    num_dropped_images: int
    num_headings: int  # distinct headings among the listed images
    cache_key: str
    split_key: str

    @property
    def num_images(self) -> int:
        return len(self.image_paths)

    @property
    def num_classes(self) -> int:
        return sum(len(group.class_ids) for group in self.groups)

    def _too_few_groups(self, asked: str) -> ConfigError:
        c = self.config
        dropped = (f"; {self.num_dropped_classes} classes with fewer than "
                   f"{flag_of(SplitConfig, 'min_images_per_class')}={c.min_images_per_class} images were dropped"
                   if self.num_dropped_classes else "")
        return ConfigError(
            f"{asked}, but the split of {self.train_dir} has {len(self.groups)} group"
            f"{'' if len(self.groups) == 1 else 's'} (M={c.M}, alpha={c.alpha}, "
            f"N={c.N}, L={c.L}: at most N*N*L = {c.N * c.N * c.L}{dropped}); use {GROUPS_NUM_FLAG} <= "
            f"{len(self.groups)}, or change {flag_of(SplitConfig, 'N')} / {flag_of(SplitConfig, 'L')}"
        )

    def group(self, index: int) -> Group:
        """Group `index` in the method's order (0 = first to appear in the sorted image list)."""
        if not 0 <= index < len(self.groups):
            raise self._too_few_groups(f"group {index} was asked for ({GROUPS_NUM_FLAG})")
        return self.groups[index]

    def check_groups_num(self, groups_num: int) -> None:
        """Raise ConfigError if training asks for more groups than the split has."""
        if groups_num > len(self.groups):
            raise self._too_few_groups(f"{GROUPS_NUM_FLAG}={groups_num} asks for {groups_num} groups")

    def summary(self, max_groups: int | None = 20) -> str:
        """A few lines: images, classes, dropped classes, and each group's class and image counts (no table with
        `max_groups=0`)."""
        c = self.config
        lines = [
            f"train images: {self.train_dir} ({self.num_listed_images} listed)",
            f"options: M={c.M} m, alpha={c.alpha} deg, N={c.N}, L={c.L}, min_images_per_class={c.min_images_per_class}",
            f"classes: {self.num_classes} kept with {self.num_images} images; {self.num_dropped_classes} dropped "
            f"({self.num_dropped_images} images) for having fewer than {c.min_images_per_class} images",
            f"groups: {len(self.groups)} of at most N*N*L = {c.N * c.N * c.L}; "
            f"training uses the first {min(c.groups_num, len(self.groups))} ({GROUPS_NUM_FLAG}={c.groups_num})",
        ]
        if self.num_headings == 1:
            lines.append(f"headings: all images share one heading, so alpha and L change nothing "
                         f"(at most N*N = {c.N * c.N} groups)")
        if max_groups == 0:
            return "\n".join(lines)
        lines.append(f"  {'group':>5}  {'group id':<14}{'classes':>8}{'images':>9}")
        shown = self.groups if max_groups is None else self.groups[:max_groups]
        lines += [f"  {i:>5}  {g.group_id!s:<14}{len(g.class_ids):>8}{g.num_images:>9}" for i, g in enumerate(shown)]
        if len(shown) < len(self.groups):
            lines.append(f"  ... and {len(self.groups) - len(shown)} more groups")
        return "\n".join(lines)


def _relative(path: Path, train_dir: Path) -> str:
    try:
        return path.relative_to(train_dir).as_posix()
    except ValueError:  # an image given from outside the train folder keeps its absolute path
        return path.as_posix()


def _parse_names(paths: list[Path], relative: list[str], train_dir: Path) -> list[ImageName]:
    """Parse every name with its heading; all bad names are reported in one error."""
    names, bad = [], []
    for path, rel in zip(paths, relative, strict=True):
        try:
            names.append(parse_name(path, require_heading=True))
        except BadFileNameError as error:
            bad.append(f"  {display_name(rel)}: {str(error).removeprefix(display_name(path.name) + ': ')}")
    if bad:
        more = f"\n  ... and {len(bad) - BAD_NAMES_SHOWN} more" if len(bad) > BAD_NAMES_SHOWN else ""
        raise BadFileNameError(
            f"{len(bad)} of {len(paths)} training images in {display_name(train_dir)} have a bad file name (UTM east, "
            "north and heading are required: @utm_east@utm_north@zone@letter@lat@lon@pano_id@tile_num@heading@...@.jpg)"
            ":\n" + "\n".join(bad[:BAD_NAMES_SHOWN]) + more
            + "\nRename or remove them (`cosplace-xs check-dataset` lists every problem)"
        )
    return names


def _classes(count: int) -> str:
    return f"{count} class{'' if count == 1 else 'es'}"


def _every_class_dropped(class_sizes: list[int], config: SplitConfig, train_dir: Path) -> ConfigError:
    """The error of a --min-images-per-class above every class's size, with the values that would keep some."""
    sizes = sorted(set(class_sizes), reverse=True)[:ADVICE_STEPS]
    kept = [sum(size >= threshold for size in class_sizes) for threshold in sizes]
    steps = ", ".join(f"{threshold} keeps {count}" for threshold, count in zip(sizes[1:], kept[1:], strict=True))
    flag = flag_of(SplitConfig, "min_images_per_class")
    return ConfigError(
        f"option {flag}={config.min_images_per_class} drops every class of {display_name(train_dir)}: "
        f"its {_classes(len(class_sizes))} (M={config.M}, alpha={config.alpha}) have fewer images; the largest class "
        f"has {sizes[0]} image{'' if sizes[0] == 1 else 's'}: {flag} {sizes[0]} keeps "
        f"{_classes(kept[0])}{', ' + steps if steps else ''} (a larger {flag_of(SplitConfig, 'M')} or "
        f"{flag_of(SplitConfig, 'alpha')} also gives classes more images)"
    )


def _assign(names: list[ImageName], config: SplitConfig, train_dir: Path) -> dict[str, Any]:
    """Classes, dropped classes and groups of the sorted images, as the JSON-ready dict the cache stores."""
    c = config
    class_of = [compute_class_id(x.utm_east, x.utm_north, x.heading, c.M, c.alpha, c.heading_360) for x in names]
    members: dict[ClassId, list[int]] = {}
    for index, class_id in enumerate(class_of):
        members.setdefault(class_id, []).append(index)
    kept = {class_id for class_id, images in members.items() if len(images) >= c.min_images_per_class}
    if not kept:
        raise _every_class_dropped([len(images) for images in members.values()], config, train_dir)
    kept_images = [i for i, class_id in enumerate(class_of) if class_id in kept]
    new_index = {old: new for new, old in enumerate(kept_images)}
    group_classes: dict[GroupId, set[ClassId]] = {}  # insertion order = first appearance in the sorted list
    for i in kept_images:
        group_classes.setdefault(compute_group_id(class_of[i], c.M, c.alpha, c.N, c.L), set()).add(class_of[i])
    groups = []
    for group_id, classes in group_classes.items():
        class_ids = sorted(classes)
        groups.append([group_id, class_ids, [[new_index[i] for i in members[k]] for k in class_ids]])
    return {
        "kept_images": kept_images,
        "groups": groups,
        "num_dropped_classes": len(members) - len(kept),
        "num_dropped_images": len(names) - len(kept_images),
        "num_headings": len({x.heading % 360 for x in names}),
    }


def _triple(value: Any) -> tuple[int, int, int]:
    if len(value) != 3 or not all(isinstance(v, int) for v in value):
        raise ValueError(f"expected three integers, got {value!r}")
    return int(value[0]), int(value[1]), int(value[2])


def _groups_from(data: list, num_images: int) -> tuple[Group, ...]:
    """Rebuild (and check) the groups of a cache file or of `_assign`."""
    groups = []
    for group_id, class_ids, class_images in data:
        images = tuple(tuple(int(i) for i in members) for members in class_images)
        if len(images) != len(class_ids) or any(not 0 <= i < num_images for m in images for i in m):
            raise ValueError("class images do not match the classes or the image list")
        groups.append(Group(_triple(group_id), tuple(_triple(k) for k in class_ids), images))
    return tuple(groups)


def _read_cached(cache_dir: Path, key: str, train_dir: Path) -> tuple[tuple[Path, ...], dict[str, Any]] | None:
    """The kept image paths and split data of a cache file, or None when absent or corrupt (then rebuilt)."""
    data = split_cache.read_cache(cache_dir, key)
    if data is None:
        return None
    try:
        kept_paths = tuple(train_dir / rel for rel in data["images"])
        data["groups"] = _groups_from(data["groups"], len(kept_paths))
        for name in COUNTS:
            data[name] = int(data[name])
    except (KeyError, TypeError, ValueError) as error:
        log.warning("%s: corrupt split cache (%s); rebuilding the split", split_cache.cache_file(cache_dir, key), error)
        return None
    return kept_paths, data


def build_split(train_dir: str | Path, config: SplitConfig, cache_dir: Path | None = None,
                images: list[Path] | None = None) -> TrainSplit:
    """The CosPlace split of `train_dir` (or of `images` inside it), read from the cache when its key matches.

    Does not check `config.groups_num`: the trainer calls `TrainSplit.check_groups_num`.
    """
    train_dir = Path(train_dir).absolute()
    listed = images if images is not None else list_images(train_dir, "training images")
    paths = sorted({Path(p).absolute() for p in listed}, key=lambda p: p.as_posix())
    if not paths:
        raise DatasetLayoutError(f"{train_dir}: no usable training image left to split")
    relative = [_relative(p, train_dir) for p in paths]
    key = split_cache.cache_key(config, relative, paths)
    cache_dir = Path(cache_dir) if cache_dir is not None else split_cache.default_cache_dir()
    cached = _read_cached(cache_dir, key, train_dir)
    if cached is not None and not cached[1]["groups"]:
        cached = None  # an empty split, cached before it was refused: built again to say which option keeps classes
    if cached is not None:
        log.info("split cache hit: %s", split_cache.cache_file(cache_dir, key))
        kept_paths, data = cached
    else:
        log.info("split cache miss: building the split of %d images in %s", len(paths), train_dir)
        data = _assign(_parse_names(paths, relative, train_dir), config, train_dir)
        kept_paths = tuple(paths[i] for i in data["kept_images"])
        stored = {"images": [relative[i] for i in data["kept_images"]], "groups": data["groups"],
                  **{name: data[name] for name in COUNTS}}
        if split_cache.write_cache(cache_dir, key, stored) is not None:
            log.info("split cached in %s", split_cache.cache_file(cache_dir, key))
        data["groups"] = _groups_from(data["groups"], len(kept_paths))
    split = TrainSplit(train_dir, kept_paths, data["groups"], config, len(paths),
                       *(data[name] for name in COUNTS), cache_key=key,
                       split_key=split_cache.split_key(config, relative))
    if split.num_headings == 1:
        log.info("all %d training images share one heading: alpha and L change nothing, and at most N*N = %d "
                 "groups exist", len(paths), config.N * config.N)
    return split
