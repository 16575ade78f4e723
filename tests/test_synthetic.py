"""The synthetic city: layout, names, determinism, disjoint areas, a learnable task with a real domain shift."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import utm
from PIL import Image

from cosplace_xs.cli import main
from cosplace_xs.config import SplitConfig
from cosplace_xs.data.layout import discover_dataset, find_test_set, list_images
from cosplace_xs.data.names import format_name, parse_name
from cosplace_xs.data.split import build_split, compute_class_id, compute_group_id
from cosplace_xs.errors import ConfigError, DatasetLayoutError
from cosplace_xs.synthetic.city import city_preset, generate_city, plan_city
from cosplace_xs.visualize.contact_sheet import nearest_database_image, write_contact_sheet

TEST_SETS = ("val", "test", "tokyo_xs/test")


def _all_images(root: Path) -> list[Path]:
    return sorted(root.rglob("*.jpg"))


def _small(path: Path, size: int = 16) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L").resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def _utm(paths: list[Path]) -> np.ndarray:
    return np.array([[parse_name(p).utm_east, parse_name(p).utm_north] for p in paths])


def test_layout_matches_sf_xs_and_tokyo_xs(tiny_city: Path) -> None:
    paths = discover_dataset(tiny_city)
    assert paths.train_dir is not None and paths.val is not None and paths.test is not None
    tokyo = find_test_set(tiny_city / "tokyo_xs")
    assert tokyo.database_dir == tiny_city / "tokyo_xs" / "test" / "database"
    train_folders = {p.parent for p in list_images(paths.train_dir)}
    assert all(folder.parent == paths.train_dir for folder in train_folders)  # one level of sub-folders
    manifest = json.loads((tiny_city / "city.json").read_text())
    # tiny: one 100 m street per area; train every 2.5 m x 12 headings, databases every 10 m x 12 headings
    assert manifest["counts"] == {"train": 480, "val/database": 120, "val/queries": 20, "test/database": 120,
                                  "test/queries": 30, "tokyo_xs/test/database": 120, "tokyo_xs/test/queries": 20}
    for folder, count in manifest["counts"].items():
        assert len(list_images(tiny_city / folder)) == count, folder
    assert manifest["config"]["seed"] == 0 and manifest["config"]["image_size"] == 64
    with Image.open(next(iter(list_images(tiny_city / "test" / "queries")))) as image:
        assert image.size == (64, 64) and image.mode == "RGB"


def test_names_round_trip_and_carry_consistent_utm_and_lat_lon(tiny_city: Path) -> None:
    for path in _all_images(tiny_city):
        name = parse_name(path, require_heading="train" in path.parts)
        assert format_name(name) == path.name
        assert (name.utm_zone_number, name.utm_zone_letter) == (10, "S")
        assert 0.0 <= name.heading < 360.0
        east, north, zone, letter = utm.from_latlon(name.lat, name.lon)
        assert (zone, letter) == (10, "S")
        assert math.hypot(east - name.utm_east, north - name.utm_north) < 1.0, path.name
        night = name.note == "night"
        assert (name.prefix == "NIGHT") == night, path.name
        assert len(name.pano_id) == 22 and name.timestamp.isdigit() and len(name.timestamp) == 6


def test_same_seed_same_bytes_whatever_the_workers_other_seed_other_city(tiny_city: Path, tmp_path: Path) -> None:
    again = generate_city(tmp_path / "again", city_preset("tiny"), workers=1, progress=False)
    files = [p.relative_to(tiny_city) for p in _all_images(tiny_city)] + [Path("city.json")]
    assert files == [p.relative_to(again.root) for p in _all_images(again.root)] + [Path("city.json")]
    assert all((tiny_city / f).read_bytes() == (again.root / f).read_bytes() for f in files)
    other = generate_city(tmp_path / "other", city_preset("tiny", seed=1, test_queries=5), workers=1, progress=False)
    queries = list_images(other.root / "test" / "queries")
    assert len(queries) == 5
    assert {p.name for p in queries}.isdisjoint(p.name for p in list_images(tiny_city / "test" / "queries"))
    assert list_images(other.root / "train")[0].read_bytes() != list_images(tiny_city / "train")[0].read_bytes()


def test_areas_are_disjoint(tiny_city: Path) -> None:
    areas = {"train": _utm(list_images(tiny_city / "train"))}
    for name in TEST_SETS:
        areas[name] = _utm(list_images(tiny_city / name / "database") + list_images(tiny_city / name / "queries"))
    names = list(areas)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            gap = np.linalg.norm(areas[a][:, None] - areas[b][None], axis=-1).min()
            assert gap > 100.0, (a, b, gap)


def test_queries_always_have_a_positive_and_nearest_image_prefers_the_same_view(tiny_city: Path) -> None:
    for name in TEST_SETS:
        queries = _utm(list_images(tiny_city / name / "queries"))
        database = _utm(list_images(tiny_city / name / "database"))
        nearest = np.linalg.norm(queries[:, None] - database[None], axis=-1).min(axis=1)
        assert nearest.max() <= 25.0, name  # the oracle's Recall@1 is 100%
    database = [parse_name(p) for p in list_images(tiny_city / "test" / "database")]
    query = parse_name(list_images(tiny_city / "test" / "queries")[0])
    match = database[nearest_database_image(query, database)]
    gap = abs(match.heading - query.heading) % 360
    assert min(gap, 360 - gap) <= 15.0  # 12 headings per panorama: one is within 15 degrees
    assert math.hypot(match.utm_east - query.utm_east, match.utm_north - query.utm_north) <= 25.0


def _database_pictures(root: Path) -> tuple[list[Path], np.ndarray, np.ndarray]:
    paths = [p for name in TEST_SETS for p in list_images(root / name / "database")]
    sectors = np.array([int(parse_name(p).tile_num) for p in paths])
    return paths, _utm(paths), sectors


def test_near_pictures_look_more_alike_than_far_ones(tiny_city: Path) -> None:
    """By mean absolute difference of 16x16 grey thumbnails, among pictures of the same heading: near pairs
    differ less than far pairs, and a picture's most alike one lies within 25 m far more often than chance."""
    paths, where, sectors = _database_pictures(tiny_city)
    pixels = np.stack([_small(p) for p in paths])
    distance = np.linalg.norm(where[:, None] - where[None], axis=-1)
    same_view = (sectors[:, None] == sectors[None]) & ~np.eye(len(paths), dtype=bool)
    difference = np.abs(pixels[:, None] - pixels[None]).mean(axis=(2, 3))
    near, far = same_view & (distance <= 25.0), same_view & (distance > 200.0)
    assert near.sum() > 100 and far.sum() > 1000
    assert difference[near].mean() < 0.95 * difference[far].mean()

    most_alike = np.where(same_view, difference, np.inf).argmin(axis=1)
    found_near = near[np.arange(len(paths)), most_alike].mean()
    chance = (near.sum(axis=1) / same_view.sum(axis=1)).mean()
    assert found_near > 1.5 * chance, (found_near, chance)


def test_queries_differ_from_the_database_as_real_queries_do(tiny_city: Path) -> None:
    database = [parse_name(p) for name in TEST_SETS for p in list_images(tiny_city / name / "database")]
    queries = [parse_name(p) for name in TEST_SETS for p in list_images(tiny_city / name / "queries")]
    assert not {name.note for name in database} & {"night", "dusk", "fog", "rain"}
    conditions = Counter(name.note for name in queries)
    assert {"night", "dusk"} <= set(conditions) and len(conditions) >= 4, conditions
    # queries stand off the database's survey points and headings, as a photo taken by someone else does
    offsets = [min(math.hypot(q.utm_east - d.utm_east, q.utm_north - d.utm_north) for d in database)
               for q in queries[:20]]
    assert max(offsets) > 0.5


def test_the_training_split_fills_the_groups(tiny_city: Path, tmp_path: Path, monkeypatch) -> None:
    """Streets on a pitch that is a multiple of M*N give every group classes (CosPlace's split on the city)."""
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))
    images = list_images(tiny_city / "train")
    split = build_split(tiny_city / "train", SplitConfig(min_images_per_class=2), images=images)
    sizes = [len(group.class_ids) for group in split.groups]
    assert len(sizes) >= 2 and min(sizes) >= 4, sizes
    first = parse_name(images[0], require_heading=True)
    class_id = compute_class_id(first.utm_east, first.utm_north, first.heading, 10, 30)
    assert compute_group_id(class_id, 10, 30, 5, 2) in {group.group_id for group in split.groups}


def test_plan_is_deterministic_and_the_larger_presets_are_larger() -> None:
    plans, shots = plan_city(city_preset("tiny"))
    again_shots = plan_city(city_preset("tiny"))[1]
    assert [s.path for s in shots["train"]] == [s.path for s in again_shots["train"]]
    assert set(plans) == {"train", "val", "test", "tokyo_xs"}
    counts = [sum(len(s) for s in plan_city(city_preset(name))[1].values()) for name in ("tiny", "small", "medium")]
    assert counts[0] < counts[1] < counts[2]


@pytest.mark.parametrize(("overrides", "named"), [
    ({"image_size": 8}, "image_size=8"), ({"train_step": 0.0}, "train_step=0.0"),
    ({"test_queries": 0}, "test_queries=0"), ({"query_conditions": (("snow", 1.0),)}, "query_conditions="),
])
def test_bad_city_options_name_the_option(overrides: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)):
        city_preset("tiny", **overrides)


def test_unknown_preset_and_unknown_option_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown city preset 'huge'; choose one of tiny, small"):
        city_preset("huge")
    with pytest.raises(ConfigError, match="unknown city option"):
        city_preset("tiny", streets=3)


def test_a_folder_that_is_not_empty_is_refused_unless_overwrite(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    config = city_preset("tiny", train_blocks=(1, 0), test_queries=2, val_queries=2, tokyo_queries=2)
    with pytest.raises(DatasetLayoutError, match=rf"{re.escape(str(tmp_path))}: folder is not empty"):
        generate_city(tmp_path, config, workers=1, progress=False)
    generate_city(tmp_path, config, workers=1, progress=False, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "city.json").is_file()


def test_synth_command_writes_the_city_and_a_contact_sheet(tmp_path: Path, capsys) -> None:
    out = tmp_path / "city"
    assert main(["synth", str(out), "--preset", "tiny", "--image-size", "32", "--set", "test_queries=4",
                 "--workers", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "test/queries" in printed and f"contact sheet: {out / 'contact_sheet.png'}" in printed
    assert len(list_images(out / "test" / "queries")) == 4
    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.format == "PNG" and sheet.width > 4 * 2 * 64
    assert main(["synth", str(out), "--set", "streets=3"]) == 2
    assert "--set 'streets=3'" in capsys.readouterr().err


def test_contact_sheet_pairs_each_query_with_a_database_image_within_25_m(tiny_city: Path, tmp_path: Path) -> None:
    sheet = write_contact_sheet([find_test_set(tiny_city / "test")], tmp_path / "sheet.png", pairs_per_set=4,
                                tile=32, pairs_per_row=2)
    with Image.open(sheet) as image:
        assert image.size[0] > 2 * 2 * 32 and image.size[1] > 2 * 32
    database = [parse_name(p) for p in list_images(tiny_city / "test" / "database")]
    for path in list_images(tiny_city / "test" / "queries")[:5]:
        query = parse_name(path)
        match = database[nearest_database_image(query, database)]
        assert math.hypot(match.utm_east - query.utm_east, match.utm_north - query.utm_north) <= 25.0
