"""CosPlace classes and groups (docs/architecture.md): formulas, order, dropped classes, cache, split-info."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from cosplace_xs.cli import split_info
from cosplace_xs.config import SplitConfig
from cosplace_xs.data import split as split_module
from cosplace_xs.data.split import Group, build_split, compute_class_id, compute_group_id
from cosplace_xs.errors import BadFileNameError, ConfigError


@pytest.mark.parametrize(("e", "E"), [(19.999, 10), (20.0, 20), (0.0, 0), (-0.5, -10), (-10.0, -10), (-10.01, -20)])
def test_cell_borders_floor_towards_minus_infinity(e: float, E: int) -> None:
    assert compute_class_id(e, e, 0.0, 10, 30) == (E, E, 0)


@pytest.mark.parametrize(("h", "H"), [(0.0, 0), (29.99, 0), (30.0, 30), (359.9, 330), (360.0, 0), (185.0, 180)])
def test_heading_sectors_wrap_360_onto_0(h: float, H: int) -> None:
    assert compute_class_id(551550.0, 4182401.73, h, 10, 30) == (551550, 4182400, H)


def test_class_ids_are_integers() -> None:
    assert all(type(v) is int for v in compute_class_id(551555.5, 4182401.73, 359.9, 10, 30))


def test_group_ids_on_a_hand_made_grid() -> None:
    def group(E: int, N_: int = 0, H: int = 0) -> tuple[int, int, int]:
        return compute_group_id((E, N_, H), M=10, alpha=30, N=5, L=2)

    assert group(0) == group(50) == group(-50) == (0, 0, 0)  # N=5 cells of 10 m: 50 m apart share a group
    assert group(10) == (1, 0, 0) != group(0)  # neighbours never do
    assert group(-10) == (4, 0, 0)
    assert group(0, 40) == (0, 4, 0)
    assert group(0, 0, 0) == group(0, 0, 60) == (0, 0, 0)  # L=2 sectors of 30 degrees
    assert group(0, 0, 30) == group(0, 0, 330) == (0, 0, 1)


def _dataset(root: Path, image_name, entries: list[tuple[str, float, float, float | None]]) -> Path:
    """Empty files named `folder/@east@north@...@heading@...@.jpg`: the split reads names only."""
    for folder, east, north, heading in entries:
        path = root / folder / image_name(east, north, heading)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return root


HAND_MADE = [  # M=10, alpha=30, N=2, L=1, min_images_per_class=2
    ("a", 0.5, 0.5, 200.0),  # class (0, 0, 180): alone, dropped; first in path order, yet orders no group
    ("a", 31.0, 1.0, 0.0),  # class (30, 0, 0), group (1, 0, 0)
    ("a", 33.0, 2.0, 5.0),
    ("b", 12.0, 7.0, 10.0),  # class (10, 0, 0), group (1, 0, 0)
    ("b", 15.0, 5.0, 0.0),
    ("b", 5.0, 5.0, 0.0),  # class (0, 0, 0), group (0, 0, 0)
    ("c", 6.0, 6.0, 0.0),
    ("c", 55.0, 5.0, 0.0),  # class (50, 0, 0): alone, dropped
]
HAND_CONFIG = SplitConfig(M=10, alpha=30, N=2, L=1, min_images_per_class=2, groups_num=2)


@pytest.fixture
def hand_made(tmp_path: Path, image_name) -> Path:
    return _dataset(tmp_path / "train", image_name, HAND_MADE)


def test_hand_made_split(hand_made: Path, tmp_path: Path, image_name) -> None:
    split = build_split(hand_made, HAND_CONFIG, cache_dir=tmp_path / "cache")
    assert [p.relative_to(hand_made).as_posix() for p in split.image_paths] == [
        f"a/{image_name(31.0, 1.0, 0.0)}", f"a/{image_name(33.0, 2.0, 5.0)}", f"b/{image_name(12.0, 7.0, 10.0)}",
        f"b/{image_name(15.0, 5.0, 0.0)}", f"b/{image_name(5.0, 5.0, 0.0)}", f"c/{image_name(6.0, 6.0, 0.0)}"]
    assert all(p.is_absolute() for p in split.image_paths)
    assert split.groups == (  # group order: first appearance (kept classes only); classes sorted inside
        Group((1, 0, 0), ((10, 0, 0), (30, 0, 0)), ((2, 3), (0, 1))),
        Group((0, 0, 0), ((0, 0, 0),), ((4, 5),)),
    )
    assert (split.num_listed_images, split.num_images, split.num_classes) == (8, 6, 3)
    assert (split.num_dropped_classes, split.num_dropped_images) == (2, 2)
    assert split.group(1).num_images == 2


def test_min_images_per_class_one_keeps_every_class(hand_made: Path, tmp_path: Path) -> None:
    config = SplitConfig(M=10, alpha=30, N=2, L=1, min_images_per_class=1)
    split = build_split(hand_made, config, cache_dir=tmp_path / "cache")
    assert split.groups[0].group_id == (0, 0, 0)  # the lone image in a/ now orders first
    assert split.groups[0].class_ids == ((0, 0, 0), (0, 0, 180))
    assert split.groups[1].class_ids == ((10, 0, 0), (30, 0, 0), (50, 0, 0))  # 50 m east: (50 mod 20) div 10 = 1
    assert (split.num_classes, split.num_dropped_classes, split.num_images) == (5, 0, 8)


def test_images_argument_restricts_the_split(hand_made: Path, tmp_path: Path) -> None:
    images = sorted((hand_made / "b").iterdir(), reverse=True)  # any order in, sorted order out
    split = build_split(hand_made, SplitConfig(min_images_per_class=1, N=2, L=1), tmp_path / "cache", images=images)
    assert list(split.image_paths) == sorted(images)
    assert split.num_listed_images == 3


def test_more_groups_than_exist_is_a_config_error(hand_made: Path, tmp_path: Path) -> None:
    split = build_split(hand_made, HAND_CONFIG, cache_dir=tmp_path / "cache")
    split.check_groups_num(2)
    with pytest.raises(ConfigError, match=r"--groups-num=3 asks for 3 groups, but the split .* has 2 groups.*"
                                          r"2 classes with fewer than --min-images-per-class=2 images were dropped"):
        split.check_groups_num(3)
    for index in (2, -1):
        with pytest.raises(ConfigError, match=r"--groups-num.*has 2 groups.*use --groups-num <= 2"):
            split.group(index)


def test_bad_names_are_listed_in_one_error(tmp_path: Path, image_name) -> None:
    train = _dataset(tmp_path / "train", image_name, [("ok", 1.0, 2.0, 0.0), ("ok", 1.0, 2.0, 0.0)])
    for name in ("photo.jpg", "@1.0@2.0@10@S@@@@@@@@@@@.jpg", "@1.0@north@10@S@@@@@0@@@@@@.jpg"):
        (train / "bad" / name).parent.mkdir(exist_ok=True)
        (train / "bad" / name).write_bytes(b"")
    with pytest.raises(BadFileNameError) as error:
        build_split(train, SplitConfig(), cache_dir=tmp_path / "cache")
    message = str(error.value)
    assert message.startswith(f"3 of 4 training images in {train} have a bad file name")
    assert "  bad/photo.jpg: not in the" in message
    assert "  bad/@1.0@2.0@10@S@@@@@@@@@@@.jpg: field 'heading' is empty" in message
    assert "  bad/@1.0@north@10@S@@@@@0@@@@@@.jpg: field 'utm_north' is 'north', not a number" in message


def test_many_bad_names_show_twenty_and_a_count(tmp_path: Path) -> None:
    train = tmp_path / "train"
    train.mkdir()
    for i in range(25):
        (train / f"img{i:02d}.jpg").write_bytes(b"")
    with pytest.raises(BadFileNameError, match=r"(?s)img19\.jpg.*\.\.\. and 5 more") as error:
        build_split(train, SplitConfig(), cache_dir=tmp_path / "cache")
    assert "img20.jpg" not in str(error.value)


def test_one_heading_everywhere_is_logged(tmp_path: Path, image_name, caplog) -> None:
    train = _dataset(tmp_path / "train", image_name, [("x", 10.0 * i, 0.0, 0.0) for i in range(12)])
    with caplog.at_level(logging.INFO):
        split = build_split(train, SplitConfig(min_images_per_class=1), cache_dir=tmp_path / "cache")
    assert "share one heading: alpha and L change nothing, and at most N*N = 25 groups" in caplog.text
    assert len(split.groups) == 5  # 12 cells in a row: east index mod 5
    assert "all images share one heading" in split.summary()


def test_summary_lists_counts_and_groups(hand_made: Path, tmp_path: Path) -> None:
    summary = build_split(hand_made, HAND_CONFIG, cache_dir=tmp_path / "cache").summary(max_groups=1)
    assert "classes: 3 kept with 6 images; 2 dropped (2 images) for having fewer than 2 images" in summary
    assert "groups: 2 of at most N*N*L = 4; training uses the first 2 (--groups-num=2)" in summary
    assert "(1, 0, 0)" in summary and "(0, 0, 0)" not in summary and "... and 1 more groups" in summary


# -- cache ---------------------------------------------------------------------------------------------------


def _build(train: Path, cache: Path, caplog, config: SplitConfig = HAND_CONFIG) -> tuple[bool, object]:
    """Build the split and say whether it came from the cache."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cosplace_xs.data.split"):
        split = build_split(train, config, cache_dir=cache)
    return "split cache hit" in caplog.text, split


def test_identical_inputs_hit_the_cache_without_rebuilding(hand_made: Path, tmp_path: Path, caplog,
                                                           monkeypatch) -> None:
    cache = tmp_path / "cache"
    hit, first = _build(hand_made, cache, caplog)
    assert not hit
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].name == f"split-{first.cache_key[:16]}.json"  # no temporary file left
    monkeypatch.setattr(split_module, "_assign", lambda *a: pytest.fail("the split was rebuilt"))
    hit, second = _build(hand_made, cache, caplog)
    assert hit
    assert second == first


def test_groups_num_does_not_change_the_split(hand_made: Path, tmp_path: Path, caplog) -> None:
    _build(hand_made, tmp_path / "cache", caplog)
    hit, split = _build(hand_made, tmp_path / "cache", caplog, SplitConfig(**{**vars(HAND_CONFIG), "groups_num": 1}))
    assert hit and split.config.groups_num == 1


@pytest.mark.parametrize("change", [{"alpha": 60}, {"L": 2}, {"min_images_per_class": 1}, {"M": 20}, {"N": 3}])
def test_changing_any_split_option_builds_a_fresh_split(hand_made: Path, tmp_path: Path, caplog, change) -> None:
    _, before = _build(hand_made, tmp_path / "cache", caplog)
    hit, after = _build(hand_made, tmp_path / "cache", caplog, SplitConfig(**{**vars(HAND_CONFIG), **change}))
    assert not hit
    assert after.cache_key != before.cache_key and after.split_key != before.split_key


def test_adding_removing_renaming_or_touching_an_image_builds_a_fresh_split(hand_made: Path, tmp_path: Path, caplog,
                                                                            image_name) -> None:
    cache = tmp_path / "cache"
    _, split = _build(hand_made, cache, caplog)
    added = hand_made / "c" / image_name(7.0, 7.0, 0.0)
    added.write_bytes(b"")
    hit, grown = _build(hand_made, cache, caplog)
    assert not hit and grown.num_images == split.num_images + 1
    added.rename(hand_made / "c" / image_name(7.0, 7.0, 90.0))
    hit, renamed = _build(hand_made, cache, caplog)
    assert not hit and renamed.num_images == split.num_images and renamed.num_dropped_classes == 3
    (hand_made / "c" / image_name(7.0, 7.0, 90.0)).unlink()
    assert _build(hand_made, cache, caplog)[0]  # back to the first set of images: its cache file is still there
    os.utime(split.image_paths[0], ns=(0, 0))
    assert not _build(hand_made, cache, caplog)[0]


def test_split_key_survives_copying_the_dataset_but_the_cache_key_does_not(hand_made: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(hand_made, tmp_path / "elsewhere" / "train")
    for path in copy.rglob("*.jpg"):
        os.utime(path, ns=(1, 1))
    original = build_split(hand_made, HAND_CONFIG, cache_dir=tmp_path / "cache")
    copied = build_split(copy, HAND_CONFIG, cache_dir=tmp_path / "cache")
    assert copied.split_key == original.split_key and copied.cache_key != original.cache_key
    assert copied.groups == original.groups and copied.image_paths[0].is_relative_to(copy)


@pytest.mark.parametrize("content", ["{not json", '{"version": 1}', "[]", "corrupt-groups"])
def test_a_corrupt_cache_file_is_ignored_and_rebuilt(hand_made: Path, tmp_path: Path, caplog, content: str) -> None:
    cache = tmp_path / "cache"
    _, split = _build(hand_made, cache, caplog)
    path = next(cache.iterdir())
    if content == "corrupt-groups":
        data = json.loads(path.read_text())
        data["groups"][0][2][0] = [0, 99]  # an image index past the end of the list
        content = json.dumps(data)
    path.write_text(content)
    hit, rebuilt = _build(hand_made, cache, caplog)
    assert not hit and rebuilt == split
    assert "rebuilding the split" in caplog.text
    assert _build(hand_made, cache, caplog)[0]  # and rewritten


def test_the_cache_folder_defaults_to_the_environment_variable(hand_made: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "env"))
    split = build_split(hand_made, HAND_CONFIG)
    assert (tmp_path / "env" / "splits" / f"split-{split.cache_key[:16]}.json").is_file()


def test_an_unwritable_cache_is_only_a_warning(hand_made: Path, tmp_path: Path, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING):
        split = build_split(hand_made, HAND_CONFIG, cache_dir=blocker / "cache")
    assert split.num_classes == 3 and "cannot write the split cache" in caplog.text


# -- split-info ----------------------------------------------------------------------------------------------


def _split_info(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    split_info.add_parser(parser.add_subparsers())
    args = parser.parse_args(["split-info", *argv])
    return args.run(args)


def test_split_info_prints_the_summary(hand_made: Path, tmp_path: Path, capsys) -> None:
    code = _split_info(str(hand_made.parent), "--M", "10", "--alpha", "30", "--N", "2", "--L", "1",
                       "--min-images-per-class", "2", "--groups-num", "5", "--cache-dir", str(tmp_path / "cache"))
    out = capsys.readouterr().out
    assert code == 0
    assert f"train images: {hand_made} (8 listed)" in out
    assert "classes: 3 kept with 6 images; 2 dropped" in out
    assert "--groups-num=5 is more than the 2 groups" in out


def test_split_info_refuses_bad_options(hand_made: Path) -> None:
    with pytest.raises(ConfigError, match="--alpha=7 is out of range"):
        _split_info(str(hand_made), "--alpha", "7")


def test_dropping_every_class_advises_the_min_images_per_class_that_keeps_some(hand_made: Path, tmp_path: Path) -> None:
    config = SplitConfig(M=10, alpha=30, N=2, L=1, min_images_per_class=3)
    with pytest.raises(ConfigError) as error:
        build_split(hand_made, config, cache_dir=tmp_path / "cache")
    assert str(error.value) == (
        f"option --min-images-per-class=3 drops every class of {hand_made}: its 5 classes (M=10, alpha=30) have fewer "
        "images; the largest class has 2 images: --min-images-per-class 2 keeps 3 classes, 1 keeps 5 (a larger --M or "
        "--alpha also gives classes more images)")
    assert not list((tmp_path / "cache").glob("*.json"))  # nothing cached: the advice is given again next time


def test_heading_360_merges_into_sector_0_or_is_its_own_class_as_the_official_code() -> None:
    # official datasets/train_dataset.py:156: rounded_heading = int(heading // alpha * alpha) -> 360 for 360
    assert compute_class_id(5.0, 5.0, 360.0, 10, 30) == (0, 0, 0)
    assert compute_class_id(5.0, 5.0, 360.0, 10, 30, "own_class") == (0, 0, 360)
    assert compute_class_id(5.0, 5.0, 359.9, 10, 30, "own_class") == (0, 0, 330)
    # official train_dataset.py:162: 360 % (30 * 2) // 30 = 0, sector 0's group
    assert compute_group_id((0, 0, 360), 10, 30, 5, 2) == (0, 0, 0)


def test_heading_360_option_enters_the_cache_key_only_when_not_the_default() -> None:
    from cosplace_xs.data.split_cache import split_options

    assert "heading_360" not in split_options(SplitConfig())  # keys of existing caches and runs stay valid
    assert split_options(SplitConfig(heading_360="own_class"))["heading_360"] == "own_class"
