"""Each aggregation trains one tiny step and validates, is saved with its option, and is rebuilt from its
checkpoint."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from helpers import ONE_STEP_FLAGS, run_main, write_small_dataset

from cosplace_xs.checkpoints import read_checkpoint
from cosplace_xs.evaluation.model_loading import read_trained_model
from cosplace_xs.model.aggregators import AGGREGATORS
from cosplace_xs.model.backbones import BACKBONES

# NetVLAD's k-means needs 64 local features: 9 a 96-pixel image, 72 from the dataset's 8 training images;
# SALAD more than 64 patch tokens an image: 9 x 9 at 126 pixels
SIZE = {"netvlad": "96", "salad": "126"}


def _backbone_for(aggregation: str) -> str | None:
    """The first registered backbone the aggregation works on (SALAD: one that gives tokens)."""
    needs_tokens = AGGREGATORS[aggregation].takes_tokens
    return next((name for name, spec in BACKBONES.items()
                 if spec.gives_tokens or not needs_tokens), None)


# gem, the default, trains in test_training.py and every other one-step test
COMBINATIONS = [(name, _backbone_for(name)) for name in AGGREGATORS if name != "gem" and _backbone_for(name)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_dataset(tmp_path_factory.mktemp("aggregators"), test_sets=("val", "test"))


@pytest.mark.parametrize(("aggregation", "backbone"), COMBINATIONS)
def test_one_step_trains_and_evaluates(dataset, tmp_path, capsys, aggregation, backbone) -> None:
    run = tmp_path / "run"
    code, _, err = run_main(["train", str(dataset), "--run-dir", str(run), *ONE_STEP_FLAGS, "--backbone", backbone,
                             "--aggregation", aggregation, "--image-size", SIZE.get(aggregation, "32")], capsys)
    assert code == 0, err
    assert read_checkpoint(run / "last.pt")["config"]["model"]["aggregation"] == aggregation
    model, config = read_trained_model(run)
    assert (model.aggregation_name, config.model.aggregation, model.fc_output_dim) == (aggregation, aggregation, 8)
    with torch.no_grad():
        descriptors = model.eval()(torch.zeros(2, 3, 126, 126))
    torch.testing.assert_close(descriptors.norm(dim=1), torch.ones(2))
    # validation is the evaluation: both queries of the val set have a positive among the 3 database images
    (row,) = list(csv.DictReader((run / "metrics.csv").open()))
    assert row["epoch"] == "1" and float(row["val_R@1"]) in (0.0, 50.0, 100.0) and float(row["val_R@5"]) == 100.0

def test_every_aggregation_without_tokens_is_trained_above() -> None:
    assert {name for name, _ in COMBINATIONS} >= {"mixvpr", "netvlad"}
