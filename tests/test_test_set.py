"""Test sets (docs/architecture.md): positives within 25 m, sorted by distance; bad names; missing positives."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from cosplace_xs.data.test_set import find_positives, load_test_set
from cosplace_xs.errors import BadFileNameError, ConfigError, DatasetLayoutError

E0, N0 = 551_000.0, 4_182_000.0  # real SF magnitudes, where float32 or dot-product distances lose centimetres


def _files(folder: Path, image_name, points: list[tuple[float, float]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for east, north in points:
        (folder / image_name(E0 + east, N0 + north)).write_bytes(b"")


@pytest.fixture
def test_root(tmp_path: Path, image_name) -> Path:
    """Database on a line east of the origin; queries placed at hand-computed distances."""
    root = tmp_path / "sf_xs"
    _files(root / "test" / "database", image_name, [(0.0, 0.0), (24.9, 0.0), (25.1, 0.0), (0.0, 25.0), (10.0, 0.0)])
    _files(root / "test" / "queries", image_name, [(0.0, 0.0), (1000.0, 0.0), (15.0, 20.0)])
    return root


def test_positives_are_within_the_threshold_inclusive_and_nearest_first(test_root: Path, image_name) -> None:
    test_set = load_test_set(test_root)
    assert test_set.name == "sf_xs"
    assert (test_set.num_database, test_set.num_queries) == (5, 3)
    # path order: the names sort by the digits of east, then north
    east_north = [tuple(np.round(row - (E0, N0), 2)) for row in test_set.database_utm]
    assert east_north == [(0.0, 0.0), (0.0, 25.0), (10.0, 0.0), (24.9, 0.0), (25.1, 0.0)]
    query_order = [tuple(np.round(row - (E0, N0), 2)) for row in test_set.queries_utm]
    assert query_order == [(0.0, 0.0), (15.0, 20.0), (1000.0, 0.0)]
    at_origin, at_15_20, far = test_set.positives
    assert at_origin.tolist() == [0, 2, 3, 1]  # 0 m, 10 m, 24.9 m, 25.0 m (inclusive); 25.1 m is out
    assert far.tolist() == []
    # from (15, 20): (0, 25) is 15.81 m, (10, 0) 20.62 m, (24.9, 0) 22.32 m, (0, 0) exactly 25 m, (25.1, 0) 22.41 m
    assert at_15_20.tolist() == [1, 2, 3, 4, 0]
    assert all(p.dtype == np.int64 for p in test_set.positives)
    assert test_set.database_utm.dtype == np.float64 and test_set.queries_utm.shape == (3, 2)
    assert test_set.queries_without_positives == 1
    assert test_set.database_paths[0].name == image_name(E0, N0)


def test_threshold_is_a_parameter(test_root: Path) -> None:
    assert load_test_set(test_root, positive_dist_threshold=10.0).positives[0].tolist() == [0, 2]
    with pytest.raises(ConfigError, match="--positive-dist-threshold=0"):
        load_test_set(test_root, positive_dist_threshold=0)


def test_equal_distances_are_ordered_by_index() -> None:
    database = np.array([[E0 + 3, N0 + 4], [E0 - 5, N0], [E0, N0 - 5], [E0 + 100, N0]])
    assert find_positives(database, np.array([[E0, N0]]), 5.0)[0].tolist() == [0, 1, 2]


def test_positives_are_the_official_codes_radius_neighbours() -> None:
    """The official code's positives: sklearn's NearestNeighbors.radius_neighbors (inclusive), here on random
    points at UTM scale with queries placed exactly at the threshold and just inside it."""
    from sklearn.neighbors import NearestNeighbors

    generator = np.random.default_rng(0)
    origin_utm = np.array([E0, N0])
    database = np.round(generator.uniform(0, 400, (2000, 2)), 1) + origin_utm
    queries = np.round(generator.uniform(0, 400, (200, 2)), 1) + origin_utm
    queries[:40] = database[:40] + np.array([25.0, 0.0])  # exactly 25 m east
    queries[40:50] = database[40:50] + np.array([15.0, 20.0])  # exactly 25 m: a 3-4-5 triangle
    origin = database.mean(axis=0)
    distances, indices = NearestNeighbors().fit(database - origin).radius_neighbors(queries - origin, radius=25.0)
    expected = [i[np.lexsort((i, d))] for d, i in zip(distances, indices, strict=True)]
    got = find_positives(database, queries, 25.0)
    assert [g.tolist() for g in got] == [e.tolist() for e in expected]
    assert sum(map(len, got)) > 1000 and all(g.dtype == np.int64 for g in got)


def test_queries_without_positives_are_logged(test_root: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        load_test_set(test_root / "test")
    assert "sf_xs/test: 1 of 3 queries have no database image within 25 m" in caplog.text


def test_val_split_of_a_dataset_root(tmp_path: Path, image_name) -> None:
    _files(tmp_path / "ds" / "val" / "database", image_name, [(0.0, 0.0)])
    _files(tmp_path / "ds" / "val" / "queries", image_name, [(3.0, 4.0)])
    val = load_test_set(tmp_path / "ds", split="val")
    assert val.positives[0].tolist() == [0] and val.queries_without_positives == 0


def test_bad_query_names_are_listed(test_root: Path) -> None:
    queries = test_root / "test" / "queries"
    (queries / "IMG_0001.jpg").write_bytes(b"")
    (queries / "@551000.0@north@10@S@@@@@@@@@@@.jpg").write_bytes(b"")
    with pytest.raises(BadFileNameError) as error:
        load_test_set(test_root)
    message = str(error.value)
    assert message.startswith(f"2 of 5 query images in {queries} have a bad file name")
    assert "  IMG_0001.jpg: not in the" in message
    assert "  @551000.0@north@10@S@@@@@@@@@@@.jpg: field 'utm_north' is 'north', not a number" in message


def test_missing_or_empty_folders_are_layout_errors(test_root: Path) -> None:
    for path in (test_root / "test" / "queries").iterdir():
        path.unlink()
    with pytest.raises(DatasetLayoutError, match="queries: holds no image"):
        load_test_set(test_root)
    with pytest.raises(DatasetLayoutError, match="not a test set"):
        load_test_set(test_root / "test" / "database")
