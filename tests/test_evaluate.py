"""evaluate_model against a NumPy brute force of docs/architecture.md; checkpoints back to models; `eval` command."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (
    CPU,
    FP32_CPU,
    IndexNet,
    encoded_index,
    run_command,
    tiny_config,
    unit_rows,
    write_index_image,
    write_test_set,
    write_tiny_checkpoint,
)
from PIL import Image

from cosplace_xs.checkpoints import write_checkpoint
from cosplace_xs.cli import eval as eval_command
from cosplace_xs.config import ApproximateConfig, EvalConfig
from cosplace_xs.data.test_set import TestSet, load_test_set
from cosplace_xs.errors import BadFileNameError, CheckpointError, ConfigError, DatasetLayoutError
from cosplace_xs.evaluation.evaluate import evaluate_model
from cosplace_xs.evaluation.inference import NATIVE, Inference
from cosplace_xs.evaluation.model_loading import load_trained_model
from cosplace_xs.model.network import GeoLocalizationNet


@pytest.fixture
def line_set(tmp_path: Path) -> Path:
    """40 database images every 20 m along a street, 12 queries: 9 near it, 3 a kilometre away (no positive)."""
    database = [(20.0 * i, 0.0) for i in range(40)]
    queries = [(20.0 * i + 3.0, 4.0) for i in range(0, 36, 4)] + [(1000.0, 1000.0 + 50 * i) for i in range(3)]
    return write_test_set(tmp_path / "street", database, queries)


def test_evaluate_equals_numpy_brute_force(line_set: Path) -> None:
    generator = np.random.default_rng(5)
    table = unit_rows(generator, 52, dim=16)
    table[40:46] = 0.2 * unit_rows(generator, 6, 16) + table[[0, 4, 8, 16, 20, 28]]  # six queries look like a place
    table[40:46] /= np.linalg.norm(table[40:46], axis=1, keepdims=True)
    test_set = load_test_set(line_set)
    config = EvalConfig(recall_values=(1, 5, 10, 20))
    result = evaluate_model(IndexNet(table), test_set, config, Inference(CPU, "fp32", 8, 0, NATIVE, progress=False))

    database = table[[encoded_index(p) for p in test_set.database_paths]]
    queries = table[[encoded_index(p) for p in test_set.queries_paths]]
    squared = ((queries[:, None, :].astype(np.float64) - database[None]) ** 2).sum(-1)
    expected = np.argsort(squared, axis=1, kind="stable")[:, :20]
    metres = np.hypot(*(test_set.queries_utm[:, None, :] - test_set.database_utm[None]).transpose(2, 0, 1))
    positive = metres <= 25.0
    hit = np.take_along_axis(positive, expected, axis=1)
    brute = {n: 100.0 * hit[:, :n].any(axis=1).mean() for n in (1, 5, 10, 20)}

    np.testing.assert_array_equal(result.predictions, expected)
    np.testing.assert_allclose(result.distances, np.take_along_axis(squared, expected, axis=1), atol=1e-5)
    assert result.recalls == pytest.approx(brute)
    assert 0 < result.recalls[1] < 100 and result.recalls[20] <= 75.0  # 3 of 12 queries can never be right
    assert (result.num_database, result.num_queries, result.queries_without_positives) == (40, 12, 3)


def test_approximate_recall_is_reported_beside_the_exact_one(line_set: Path) -> None:
    table = unit_rows(np.random.default_rng(6), 52, dim=16)
    config = EvalConfig(recall_values=(1, 5))
    at_16 = FP32_CPU.at_size(16)
    every_cell = ApproximateConfig("ivf", nlist=2, nprobe=2)
    result = evaluate_model(IndexNet(table), load_test_set(line_set), config, at_16, approximate=every_cell)
    assert result.approximate_recalls == result.recalls
    assert evaluate_model(IndexNet(table), load_test_set(line_set), config, at_16).approximate_recalls is None


def test_geolocalization_net_on_32_pixel_images(tmp_path: Path) -> None:
    root = write_test_set(tmp_path / "small", [(10.0 * i, 0.0) for i in range(8)], [(1.0, 0.0), (500.0, 0.0)],
                          size=32)
    model = GeoLocalizationNet("resnet18", 32).train()
    result = evaluate_model(model, load_test_set(root), EvalConfig(), Inference(CPU, "fp32", 4, 0, 32, progress=False))
    assert result.predictions.shape == result.distances.shape == (2, 8)  # k = min(20, 8 database images)
    assert sorted(result.predictions[0].tolist()) == list(range(8))
    assert np.all(np.diff(result.distances, axis=1) >= 0)
    assert result.queries_without_positives == 1 and result.recalls[20] == 50.0  # query 0 is near 3 images
    assert result.recalls[1] in (0.0, 50.0) and result.seconds > 0
    assert model.training  # the trainer's model is handed back in training mode


def test_empty_database_and_mismatched_descriptors_are_errors(line_set: Path) -> None:
    empty = TestSet("empty", (), (Path("q.png"),), np.empty((0, 2)), np.zeros((1, 2)), 25.0, (np.array([], int),))
    table = unit_rows(np.random.default_rng(0), 52)
    with pytest.raises(DatasetLayoutError, match="test set empty: 0 database images"):
        evaluate_model(IndexNet(table), empty, EvalConfig(), FP32_CPU)
    with pytest.raises(ConfigError, match="3 database descriptors given for 40 database images"):
        evaluate_model(IndexNet(table), load_test_set(line_set), EvalConfig(), FP32_CPU, database_descriptors=table[:3])


def test_checkpoint_back_to_the_same_model(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    original = write_tiny_checkpoint(run_dir / "best.pt").eval()
    model, config = load_trained_model(run_dir, CPU)
    assert not model.training and config.model.fc_output_dim == 32 and config.train.image_size == 32
    images = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(model(images), original(images))


def test_checkpoint_that_does_not_match_its_options_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    write_tiny_checkpoint(path, model_dim=16, config_dim=32)
    with pytest.raises(CheckpointError, match=r"best\.pt"):
        load_trained_model(path, CPU)
    write_checkpoint({"config": tiny_config().to_dict()}, path)
    with pytest.raises(CheckpointError, match="holds no model"):
        load_trained_model(path, CPU)


def test_eval_command_writes_table_json_csv_and_pictures(line_set: Path, tmp_path: Path, capsys) -> None:
    write_tiny_checkpoint(tmp_path / "run" / "best.pt")
    out = tmp_path / "results"
    argv = ["eval", "--checkpoint", str(tmp_path / "run"), str(line_set), "--out", str(out), "--device", "cpu",
            "--num-workers", "0", "--recall-values", "1", "5", "--save-predictions", "3", "--no-progress"]
    code = run_command(eval_command, argv)
    assert code == 0
    printed = capsys.readouterr().out
    assert "R@1" in printed and "street" in printed and "queries_without_positives" in printed
    (json_file,) = out.glob("eval-*.json")
    data = json.loads(json_file.read_text())
    assert data["image_size"] == 32 and data["positive_dist_threshold"] == 25.0
    (row,) = data["results"]
    assert (row["database"], row["queries"], row["queries_without_positives"]) == (40, 12, 3)
    assert set(row) >= {"R@1", "R@5", "seconds"} and row["R@5"] <= 75.0
    with next(out.glob("eval-*.csv")).open() as file:
        assert next(csv.DictReader(file))["R@5"] == str(row["R@5"])
    pictures = sorted(out.glob("eval-*-pictures/*/*.png"))
    assert len(pictures) == 3 and all(Image.open(p).size[0] > 32 * 6 for p in pictures)


def test_eval_command_lists_queries_without_valid_names(line_set: Path, tmp_path: Path) -> None:
    write_tiny_checkpoint(tmp_path / "best.pt")
    write_index_image(line_set / "queries" / "IMG_0001.png", 0)
    write_index_image(line_set / "queries" / "holiday.png", 0)
    with pytest.raises(BadFileNameError, match="2 of 14 query images") as error:
        run_command(eval_command, ["eval", "--checkpoint", str(tmp_path / "best.pt"), str(line_set), "--device", "cpu"])
    assert "IMG_0001.png" in str(error.value) and "holiday.png" in str(error.value)

