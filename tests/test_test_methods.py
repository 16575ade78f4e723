"""Test-time methods (evaluation/test_methods.py): crops on hand-made images, nearest crop and majority voting on
hand-made search results, each method through evaluate_model, and `eval --test-method` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (
    CPU,
    INFERENCE_FLAGS,
    IndexNet,
    run_main,
    unit_rows,
    write_index_image,
    write_test_set,
    write_tiny_checkpoint,
)

from cosplace_xs.config import TEST_METHODS, EvalConfig
from cosplace_xs.data.test_set import load_test_set
from cosplace_xs.errors import ConfigError
from cosplace_xs.evaluation.evaluate import evaluate_model
from cosplace_xs.evaluation.inference import NATIVE, Inference
from cosplace_xs.evaluation.retrieval import knn
from cosplace_xs.evaluation.test_methods import central_crop, five_crops, nearest_crop, rank, vote


def _ramp(height: int, width: int) -> torch.Tensor:
    """uint8 (3, H, W) whose pixel (y, x) is y * W + x in the red channel (unique per pixel below 256)."""
    values = torch.arange(height * width, dtype=torch.uint8).view(height, width)
    return torch.stack([values, values // 2, values // 3])


def test_central_crop_of_an_image_already_covering_the_square_is_its_middle() -> None:
    image = _ramp(10, 30)
    assert torch.equal(central_crop(image, 10), image[:, :, 10:20])
    assert central_crop(_ramp(15, 7), 8).shape == (3, 8, 8)  # scaled by 8/7 to 17 x 8, then cropped


def test_five_crops_are_the_corners_and_centre() -> None:
    image = _ramp(12, 16)
    crops = five_crops(image, 12)
    left, right, centre = image[:, :, 0:12], image[:, :, 4:16], image[:, :, 2:14]
    assert crops.shape == (5, 3, 12, 12)
    for crop, expected in zip(crops, (left, right, left, right, centre), strict=True):
        assert torch.equal(crop, expected)
    assert five_crops(_ramp(24, 32), 12).shape == (5, 3, 12, 12)  # shorter side 24 -> 12 first


def test_nearest_crop_keeps_each_database_image_at_its_closest_crop() -> None:
    predictions = np.array([[[4, 7, 2], [7, 3, 4]]])
    distances = np.array([[[0.1, 0.5, 0.9], [0.2, 0.3, 0.4]]], dtype=np.float32)
    merged_distances, merged = nearest_crop(distances, predictions, 3)
    assert merged.tolist() == [[4, 7, 3]]
    np.testing.assert_allclose(merged_distances, [[0.1, 0.2, 0.3]])


def test_nearest_crop_drops_missing_neighbours_and_pads_short_rows() -> None:
    predictions = np.array([[[5, -1], [5, -1]]])
    distances = np.array([[[0.2, np.inf], [0.1, np.inf]]], dtype=np.float32)
    merged_distances, merged = nearest_crop(distances, predictions, 2)
    assert merged.tolist() == [[5, -1]]
    assert merged_distances.tolist() == [[pytest.approx(0.1), np.inf]]


def test_majority_voting_takes_weight_times_count_over_n_off_repeated_neighbours() -> None:
    predictions = np.array([[4, 7, 2], [4, 3, 7]])
    distances = np.array([[1.0, 1.2, 1.5], [1.1, 1.3, 1.4]], dtype=np.float32)
    given = distances.copy()
    voted = vote(distances, predictions, 0.1)
    # 4: twice in the top 1 (-0.2), top 5 (-0.04) and top 10 (-0.02); 7: twice in the top 5 and top 10 (-0.06)
    np.testing.assert_allclose(voted, [[0.74, 1.14, 1.5], [0.84, 1.3, 1.34]], atol=1e-6)
    np.testing.assert_array_equal(distances, given)  # the input is left alone


def _fixed_search(distances: np.ndarray, predictions: np.ndarray):
    def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert queries.shape == (len(predictions), 2) and k == predictions.shape[1]
        return distances, predictions
    return search


def test_votes_reorder_what_nearest_crop_ranks() -> None:
    """Crop 0 finds 2 then 7, crop 1 finds 3 then 7: nearest crop ranks 2, 3, 7; the votes for 7 bring it first."""
    search = _fixed_search(np.array([[1.0, 1.05], [1.01, 1.06]], dtype=np.float32), np.array([[2, 7], [3, 7]]))
    crops = np.zeros((1, 2, 2), dtype=np.float32)
    assert rank(crops, search, 2, "nearest_crop")[1].tolist() == [[2, 3]]
    distances, predictions = rank(crops, search, 2, "maj_voting", majority_weight=0.1)
    assert predictions.tolist() == [[7, 2]]
    np.testing.assert_allclose(distances, [[0.99, 1.0]], atol=1e-6)  # 1.05 - 0.1 * 2 / 5 - 0.1 * 2 / 10


def test_five_crops_searches_the_mean_of_the_crops() -> None:
    database = np.array([[1, 0], [0, 1]], dtype=np.float32)
    crops = np.array([[[1, 0], [1, 0], [1, 0], [0, 1], [0, 1]]], dtype=np.float32)  # mean (0.6, 0.4)
    distances, predictions = rank(crops, lambda queries, k: knn(database, queries, k), 2, "five_crops")
    assert predictions.tolist() == [[0, 1]]
    np.testing.assert_allclose(distances, [[0.32, 0.72]], atol=1e-6)


@pytest.fixture(scope="module")
def wide_queries(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 database images every 30 m, 4 queries near the first four: 24 x 16 queries, 16 x 16 database."""
    root = write_test_set(tmp_path_factory.mktemp("wide") / "street", [(30.0 * i, 0.0) for i in range(8)],
                          [(30.0 * i + 2, 0.0) for i in range(4)])
    for index, path in enumerate(sorted((root / "queries").iterdir()), start=8):
        write_index_image(path, index, width=24, height=16)
    return root


@pytest.mark.parametrize(("method", "query_batch"), [
    ("hard_resize", (4, 3, 16, 16)), ("single_query", (4, 3, 16, 24)), ("central_crop", (4, 3, 16, 16)),
    ("five_crops", (20, 3, 16, 16)), ("nearest_crop", (20, 3, 16, 16)), ("maj_voting", (20, 3, 16, 16))])
def test_every_method_reads_the_queries_its_way(wide_queries: Path, method: str, query_batch: tuple) -> None:
    """One-colour images: every crop has the image's descriptor, so every method finds the same neighbours."""
    table = unit_rows(np.random.default_rng(2), 12, dim=8)
    table[8:] = table[:4] + 0.01  # each query looks like the database image beside it
    net = IndexNet(table)
    result = evaluate_model(net, load_test_set(wide_queries), EvalConfig(recall_values=(1, 2), test_method=method),
                            Inference(CPU, "fp32", 8, 0, 16, progress=False))
    assert net.batch_shapes == [(8, 3, 16, 16), query_batch]  # database, then queries
    assert result.predictions[:, 0].tolist() == [0, 1, 2, 3]
    assert result.recalls == {1: 100.0, 2: 100.0} and result.test_method == method
    assert 0 < result.query_seconds < result.seconds


def test_crops_need_a_square_size(wide_queries: Path) -> None:
    with pytest.raises(ConfigError) as error:
        evaluate_model(IndexNet(unit_rows(np.random.default_rng(2), 12)), load_test_set(wide_queries),
                       EvalConfig(test_method="central_crop"), Inference(CPU, "fp32", 8, 0, NATIVE, progress=False))
    assert str(error.value) == ("option --test-method=central_crop crops squares of the evaluation size, which "
                                "--native-size leaves unset: give --image-size N instead")


def test_eval_command_reports_the_method_and_its_cost(wide_queries: Path, tmp_path: Path, capsys) -> None:
    write_tiny_checkpoint(tmp_path / "run" / "best.pt")
    code, out, err = run_main(["eval", str(wide_queries), "--checkpoint", str(tmp_path / "run"), "--out",
                               str(tmp_path), *INFERENCE_FLAGS, "--test-method", "nearest_crop"], capsys)
    assert code == 0, err
    (row,) = json.loads(next(tmp_path.glob("eval-*.json")).read_text())["results"]
    assert row["test_method"] == "nearest_crop" and row["query_seconds"] <= row["seconds"]
    assert out.splitlines()[0].split()[-2:] == ["test_method", "query_seconds"]
    with pytest.raises(SystemExit) as exit_code:
        run_main(["eval", str(wide_queries), "--checkpoint", str(tmp_path / "run"), "--test-method", "ten_crops"],
                 capsys)
    assert exit_code.value.code == 2
    assert ("argument --test-method: invalid choice: 'ten_crops' (choose from 'hard_resize', 'single_query', "
            "'central_crop', 'five_crops', 'nearest_crop', 'maj_voting')") in capsys.readouterr().err


def test_methods_are_the_benchmarks() -> None:
    assert TEST_METHODS == ("hard_resize", "single_query", "central_crop", "five_crops", "nearest_crop",
                            "maj_voting")
