"""Result pictures (frames by distance to the truth), the choice of pictured queries, and the HTML map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from helpers import write_index_image
from PIL import Image

from cosplace_xs.data.test_set import TestSet
from cosplace_xs.evaluation.recall import NO_HIT
from cosplace_xs.visualize.predictions import (
    GREEN,
    GREY,
    PAD,
    QUERY_FRAME,
    RED,
    TITLE,
    frame_colour,
    hits_and_misses,
    save_eval_pictures,
    save_retrieval_picture,
)
from cosplace_xs.visualize.result_map import save_result_map


def _frame_pixels(path: Path, tiles: int, tile_size: int) -> list[tuple[int, int, int]]:
    """The colour of each tile's frame, one pixel inside its top-left corner."""
    with Image.open(path) as picture:
        assert picture.size == (tiles * tile_size + (tiles + 1) * PAD, picture.height)
        return [picture.getpixel((PAD + i * (tile_size + PAD) + 1, TITLE + PAD + 1)) for i in range(tiles)]


def test_frames_are_green_within_the_threshold_red_beyond_grey_unknown(tmp_path: Path) -> None:
    images = [write_index_image(tmp_path / f"{i}.png", i, 40, 30) for i in range(4)]
    missing = tmp_path / "gone.jpg"  # drawn as a grey tile rather than failing the whole picture
    path = save_retrieval_picture(images[0], [*images[1:], missing], [10.0, 25.0, 40.0, None], tmp_path / "p.png",
                                  threshold_m=25.0, tile_size=64)
    assert _frame_pixels(path, 5, 64) == [QUERY_FRAME, GREEN, GREEN, RED, GREY]
    assert frame_colour(25.01, 25.0) == RED and frame_colour(None, 25.0) == GREY


def test_pictured_queries_mix_hits_and_misses() -> None:
    ranks = np.array([0, NO_HIT, 0, 3, 0, 0, NO_HIT])  # hits at R@1: 0, 2, 4, 5; misses: 1, 3, 6
    assert hits_and_misses(ranks, 4) == [0, 1, 5, 6]  # two of each, the first and last of each kind
    assert hits_and_misses(ranks, 3) == [0, 1, 5]  # the odd one is a hit
    assert hits_and_misses(ranks, 10) == list(range(7))
    assert hits_and_misses(np.zeros(5, dtype=np.int64), 3) == [0, 2, 4]  # misses run short: hits fill in
    assert hits_and_misses(ranks, 0) == []


def test_eval_pictures_frame_matches_by_their_distance_to_the_query(tmp_path: Path) -> None:
    database = [write_index_image(tmp_path / "db" / f"{i}.png", i) for i in range(3)]
    queries = [write_index_image(tmp_path / "q" / f"{i}.png", 10 + i) for i in range(2)]
    test_set = TestSet("toy", tuple(database), tuple(queries), np.array([[0.0, 0.0], [20.0, 0.0], [90.0, 0.0]]),
                       np.array([[0.0, 0.0], [90.0, 0.0]]), 25.0, (np.array([0, 1]), np.array([2])))
    predictions = np.array([[1, 2, 0], [0, 1, 2]])  # query 0: hit at rank 0 (20 m); query 1: positive at rank 2
    ranks = np.array([0, 2])
    written = save_eval_pictures(test_set, predictions, ranks, tmp_path / "pictures", count=2, shown=3)
    assert [p.name for p in written] == ["query00000-hit.png", "query00001-miss.png"]
    assert _frame_pixels(written[0], 4, 160) == [QUERY_FRAME, GREEN, RED, GREEN]  # 20 m, 90 m, 0 m
    assert _frame_pixels(written[1], 4, 160) == [QUERY_FRAME, RED, RED, GREEN]  # 90 m, 70 m, 0 m


def test_result_map_marks_truth_prediction_and_matches(tmp_path: Path) -> None:
    path = save_result_map(tmp_path / "map.html", (37.775123, -122.418456), [(37.775123, -122.418456),
                           (37.776001, -122.419002), None], ["#1", "#2", "#3 unknown"],
                           true_position=(37.775900, -122.417700), title="<holiday>.png")
    page = path.read_text()
    for value in ("37.775123", "-122.418456", "37.776001", "-122.419002", "37.7759", "-122.4177"):
        assert value in page
    assert "&lt;holiday&gt;.png" in page and "<holiday>" not in page
