"""The backbones and losses of the README's tables train one tiny step, validate and are rebuilt from their run.

A loss sees only the (B, D) descriptors, so the product of backbones and losses is not needed: each new backbone
trains under one loss and each loss under one backbone. The largest backbones (EfficientNet-B1 to B7,
ConvNeXt-Small, DINOv2 ViT-B/14) share their family's code and are checked by shape in test_backbones.py."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from helpers import ONE_STEP_FLAGS, run_main, write_small_dataset

from cosplace_xs.checkpoints import read_checkpoint
from cosplace_xs.evaluation.model_loading import read_trained_model
from cosplace_xs.model.margins import margin_classifier

# (backbone, loss, image size): DINOv2 at 28 px, two 14-pixel patches a side
COMBINATIONS = [
    ("efficientnet_b0", "arcface", 32),
    ("convnext_tiny", "sphereface", 32),
    ("dinov2_vits14", "cosface", 28),
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_dataset(tmp_path_factory.mktemp("zoo"))


@pytest.mark.parametrize(("backbone", "loss", "size"), COMBINATIONS)
def test_one_step_trains_validates_and_reloads(dataset, tmp_path, capsys, backbone, loss, size) -> None:
    run = tmp_path / "run"
    code, _, err = run_main(["train", str(dataset), "--run-dir", str(run), *ONE_STEP_FLAGS, "--backbone", backbone,
                             "--loss", loss, "--image-size", str(size)], capsys)
    assert code == 0, err
    checkpoint = read_checkpoint(run / "last.pt")
    assert (checkpoint["config"]["model"]["backbone"], checkpoint["config"]["loss"]["loss"]) == (backbone, loss)
    model, config = read_trained_model(run)
    assert (model.backbone_name, config.loss.loss, model.fc_output_dim) == (backbone, loss, 8)
    assert type(margin_classifier(config.loss, 8, 2)).__name__.lower() == loss  # what a resume rebuilds
    with torch.no_grad():
        descriptors = model.eval()(torch.zeros(2, 3, size, size))
    torch.testing.assert_close(descriptors.norm(dim=1), torch.ones(2))
    (row,) = list(csv.DictReader((run / "metrics.csv").open()))
    assert row["epoch"] == "1" and float(row["val_R@1"]) in (0.0, 50.0, 100.0) and float(row["val_R@5"]) == 100.0


def test_every_new_backbone_family_and_every_loss_is_trained_above() -> None:
    assert {loss for _, loss, _ in COMBINATIONS} == {"cosface", "arcface", "sphereface"}
    assert {backbone.split("_")[0] for backbone, _, _ in COMBINATIONS} >= {"efficientnet", "convnext", "dinov2"}
