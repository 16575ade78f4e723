"""Re-ranking by geometric verification (evaluation/rerank.py, evaluation/matchers.py): a shifted copy among
noise moves to rank 1, the order of ties and of candidates beyond K, the learned matchers' error without kornia,
the flags of eval and predict."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from cosplace_xs.config import RERANK_METHODS, RerankConfig
from cosplace_xs.errors import WeightsUnavailableError
from cosplace_xs.evaluation.matchers import MATCHERS, count_inliers, make_matcher
from cosplace_xs.evaluation.rerank import NOT_VERIFIED, Reranker, rerank_order
from tests.helpers import E0, INFERENCE_FLAGS, N0, dataset_name, run_main, the_error, write_tiny_checkpoint

SIZE = 64  # pixels a side of the drawn images; matched at MATCH_SIZE, where SIFT finds a hundred keypoints
MATCH_SIZE = 128
SHIFT = (5, 7)  # rows, columns cut off the top left of a database image to make its query


def textured(seed: int) -> np.ndarray:
    """Grey discs and boxes on grey, drawn from `seed`: corners and blobs that SIFT and ORB find again."""
    generator = np.random.default_rng(seed)
    image = np.full((SIZE, SIZE), 128, np.uint8)
    for _ in range(20):
        x, y, r, w, h = (int(v) for v in generator.integers((0, 0, 2, 3, 3), (SIZE, SIZE, 8, 16, 16)))
        cv2.circle(image, (x, y), r, int(generator.integers(0, 256)), -1)
        cv2.rectangle(image, (x, y), (x + w, y + h), int(generator.integers(0, 256)), -1)
    return image


def noise(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE), dtype=np.uint8)


def shifted(image: np.ndarray) -> np.ndarray:
    """The image cut to its bottom right, so that it is seen a few pixels moved: a translation, one homography."""
    return image[SHIFT[0]:, SHIFT[1]:]


def save(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).convert("RGB").save(path)
    return path


@pytest.fixture(scope="module")
def noise_and_copy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """A query and four database images: noise, noise, the image the query was cut from, noise."""
    folder = tmp_path_factory.mktemp("rerank")
    target = textured(1)
    database = [save(folder / f"db{i}.png", image)
                for i, image in enumerate([noise(10), noise(11), target, noise(12)])]
    return save(folder / "query.png", shifted(target)), database


@pytest.mark.parametrize(("method", "geometry"), [("sift", "homography"), ("orb", "fundamental")])
def test_the_copy_at_rank_3_moves_to_rank_1(noise_and_copy: tuple[Path, list[Path]], method: str,
                                            geometry: str) -> None:
    query, database = noise_and_copy
    reranker = Reranker(RerankConfig(k=4, method=method, geometry=geometry, image_size=MATCH_SIZE, workers=2))
    reranked = reranker([query], database, np.array([[0, 1, 2, 3]]))
    assert reranked.apply(np.array([[0, 1, 2, 3]])).tolist() == [[2, 0, 1, 3]]
    assert reranked.inliers[0, 0] >= 30, reranked.inliers  # the copy: dozens of inliers of one translation
    assert reranked.inliers[0, 1:].max() < 10, reranked.inliers  # noise: a few chance ones at most


def test_candidates_beyond_k_keep_their_place_after_the_top_k(noise_and_copy: tuple[Path, list[Path]]) -> None:
    query, database = noise_and_copy
    reranker = Reranker(RerankConfig(k=2, image_size=MATCH_SIZE))
    # the copy at rank 3 is beyond K = 2: nothing in the top 2 verifies, so the global order stays
    reranked = reranker([query], database, np.array([[0, 1, 2, 3]]))
    assert reranked.apply(np.array([[0, 1, 2, 3]])).tolist() == [[0, 1, 2, 3]]
    assert reranked.inliers.tolist() == [[0, 0, NOT_VERIFIED, NOT_VERIFIED]]


def test_ties_keep_the_global_order_and_unverified_ones_go_last() -> None:
    assert rerank_order(np.array([[0, 5, 0, 5, NOT_VERIFIED, 1]])).tolist() == [[1, 3, 5, 0, 2, 4]]


def test_inliers_of_a_translation_and_too_few_points() -> None:
    points = np.random.default_rng(0).uniform(0, 100, (10, 2))
    moved = points + np.array([5, -3])
    assert count_inliers(points, moved, "homography", 1.0) == 10
    assert count_inliers(points[:3], moved[:3], "homography", 1.0) == 0  # a homography needs 4
    assert count_inliers(points[:7], moved[:7], "fundamental", 1.0) == 0  # a fundamental matrix 8


def test_every_rerank_method_has_a_matcher() -> None:
    assert tuple(MATCHERS) == RERANK_METHODS


KORNIA_MISSING = ("error: --rerank-method {method} needs kornia, which is not installed: `pip install kornia` (its "
                  "weights download on first use into torch's hub cache), or re-rank with --rerank-method sift")


@pytest.mark.parametrize("method", ["loftr", "disk_lightglue"])
def test_a_learned_matcher_without_kornia_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch,
                                                                 method: str) -> None:
    monkeypatch.setitem(sys.modules, "kornia", None)  # `import kornia` raises ImportError, installed or not
    with pytest.raises(WeightsUnavailableError) as raised:
        make_matcher(RerankConfig(k=5, method=method))
    assert f"error: {raised.value}" == KORNIA_MISSING.format(method=method)


def test_eval_refuses_a_missing_learned_matcher_before_reading_the_model(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path, capsys) -> None:
    monkeypatch.setitem(sys.modules, "kornia", None)
    code, _, err = run_main(["eval", str(tmp_path), "--checkpoint", str(tmp_path / "none.pt"), "--rerank", "5",
                             "--rerank-method", "loftr", *INFERENCE_FLAGS], capsys)
    assert (code, the_error(err)) == (2, KORNIA_MISSING.format(method="loftr"))


@pytest.mark.parametrize(("flags", "message"), [
    (["--rerank", "0"], "error: option --rerank=0 is out of range: >= 1"),
    (["--rerank", "5", "--rerank-ransac-threshold", "0"],
     "error: option --rerank-ransac-threshold=0 is out of range: > 0 pixels"),
    (["--rerank", "5", "--rerank-image-size", "8"], "error: option --rerank-image-size=8 is out of range: [16, 4096]"),
])
def test_rerank_flags_are_checked_by_the_schema(tmp_path: Path, capsys, flags: list[str], message: str) -> None:
    code, _, err = run_main(["eval", str(tmp_path), "--checkpoint", str(tmp_path / "none.pt"), *flags], capsys)
    assert (code, the_error(err)) == (2, message)


@pytest.fixture(scope="module")
def street(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four database images 100 m apart and two queries, shifted copies of database images 1 and 3 taken where
    they were; a tiny random-weights checkpoint."""
    root = tmp_path_factory.mktemp("street")
    images = [textured(seed) for seed in range(4)]
    for index, image in enumerate(images):
        save(root / "test" / "database" / dataset_name(E0 + 100 * index, N0), image)
    for index in (1, 3):
        save(root / "test" / "queries" / dataset_name(E0 + 100 * index, N0), shifted(images[index]))
    write_tiny_checkpoint(root / "model.pt")
    return root


RERANK_FLAGS = ("--rerank", "4", "--rerank-image-size", str(MATCH_SIZE), "--rerank-workers", "2")


def test_eval_reports_recalls_after_reranking(street: Path, tmp_path: Path, capsys) -> None:
    code, printed, err = run_main(["eval", str(street / "test"), "--checkpoint", str(street / "model.pt"),
                                   "--out", str(tmp_path), "--recall-values", "1", "4", *RERANK_FLAGS,
                                   *INFERENCE_FLAGS], capsys)
    assert code == 0, err
    document = json.loads(next(tmp_path.glob("eval-*.json")).read_text())
    (row,) = document["results"]
    # all four candidates verified: each query's own image wins whatever the random model ranked first
    assert (row["R@4"], row["rerank_R@1"], row["rerank_R@4"]) == (100.0, 100.0, 100.0)
    assert row["rerank_s_per_query"] > 0
    assert document["rerank"]["k"] == 4
    assert printed.splitlines()[0].split()[1:6] == ["R@1", "R@4", "rerank_R@1", "rerank_R@4", "rerank_s_per_query"]


def test_eval_refuses_a_k_above_the_largest_n(street: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run_main(["eval", str(street / "test"), "--checkpoint", str(street / "model.pt"),
                             "--out", str(tmp_path), "--recall-values", "1", "2", "--rerank", "3",
                             *INFERENCE_FLAGS], capsys)
    assert (code, the_error(err)) == (2, "error: option --rerank=3 re-ranks more candidates than the search returns, "
                                         "the largest N of Recall@N (2): give at most that, or add 3 to "
                                         "--recall-values")


def test_predict_shows_the_reranked_order_with_inliers(street: Path, tmp_path: Path, capsys) -> None:
    query = sorted((street / "test" / "queries").iterdir())[0]  # the copy of database image 1
    code, printed, err = run_main(["predict", str(query), "--checkpoint", str(street / "model.pt"), "--database",
                                   str(street / "test" / "database"), "--k", "2", "--out", str(tmp_path),
                                   *RERANK_FLAGS, *INFERENCE_FLAGS], capsys)
    assert code == 0, err
    (prediction,) = json.loads((tmp_path / "predictions.json").read_text())
    best, second = prediction["matches"]
    assert Path(best["path"]).name == dataset_name(E0 + 100, N0) and best["error_m"] == 0.0
    assert best["inliers"] >= 30 and best["inliers"] > second["inliers"] >= 0, prediction["matches"]
    assert printed.splitlines()[0].split()[-1] == "inliers"
