"""A NaN or infinite loss stops training at once, naming the batch, before any weight is touched: the last
good checkpoint stays as it was, and a resumed run goes on as if nothing had happened."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cosplace_xs.config import RunConfig
from cosplace_xs.errors import TrainingDivergedError
from cosplace_xs.training import checkpoint as ckpt
from cosplace_xs.training import loop


def _tail(text: str) -> str:
    return text[-3000:]


def test_an_infinite_loss_stops_the_command_and_resume_loses_nothing(cosplace_cli, tiny_train_args,
                                                                     reference_run: Path, assert_same_weights,
                                                                     tmp_path: Path) -> None:
    """The loss of the 5th batch (epoch 2, batch 2) made infinite; the last checkpoint is epoch 1's end."""
    run_dir = tmp_path / "run"
    stopped = cosplace_cli(*tiny_train_args, "--run-dir", run_dir, fault="inf-loss:5")
    assert stopped.returncode == 2, _tail(stopped.stderr)
    assert "Traceback" not in stopped.stderr
    assert f"error: the loss became inf at epoch 2, iteration 2; training stopped. The last good checkpoint is " \
           f"{run_dir / ckpt.LAST}" in stopped.stderr
    state = ckpt.read_checkpoint(run_dir / ckpt.LAST)
    assert (state["epoch"], state["iteration"]) == (1, 0)
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    assert math.isfinite(state["history"][0]["loss"])

    resumed = cosplace_cli("train", "--resume", run_dir, "--no-progress")
    assert resumed.returncode == 0, _tail(resumed.stderr)
    assert_same_weights(run_dir, reference_run)


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_a_divergence_before_the_first_checkpoint_names_no_checkpoint_that_does_not_exist(
        poison: float, tiny_city: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))
    config = RunConfig().replace({
        "train.dataset": str(tiny_city), "train.device": "cpu", "train.image_size": 32, "train.batch_size": 4,
        "train.epochs": 1, "train.iterations_per_epoch": 3, "train.checkpoint_every": 2, "train.num_workers": 0,
        "train.validate": False, "split.min_images_per_class": 2, "split.groups_num": 1,
        "model.pretrained": "none", "model.fc_output_dim": 8,
    })
    real = loop.F.cross_entropy
    monkeypatch.setattr(loop.F, "cross_entropy", lambda *args, **kwargs: real(*args, **kwargs) * poison)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(TrainingDivergedError, match=f"the loss became {poison} at epoch 1, iteration 1") as raised:
        loop.train(config, run_dir, progress=False)
    assert not (run_dir / ckpt.LAST).exists()
    assert str(run_dir / ckpt.LAST) not in str(raised.value), "it must not point to a checkpoint never written"
    assert "no checkpoint" in str(raised.value).lower()


def test_a_nan_loss_after_a_checkpoint_names_it_and_leaves_it_intact(tiny_city: Path, tmp_path: Path,
                                                                     monkeypatch) -> None:
    """NaN in the 3rd batch, after the checkpoint of batch 2: the error points to that checkpoint, still whole."""
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))
    config = RunConfig().replace({
        "train.dataset": str(tiny_city), "train.device": "cpu", "train.image_size": 32, "train.batch_size": 4,
        "train.epochs": 1, "train.iterations_per_epoch": 3, "train.checkpoint_every": 2, "train.num_workers": 0,
        "train.validate": False, "split.min_images_per_class": 2, "split.groups_num": 1,
        "model.pretrained": "none", "model.fc_output_dim": 8,
    })
    real, calls = loop.F.cross_entropy, []

    def nan_in_third_batch(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs) * (float("nan") if len(calls) == 3 else 1.0)

    monkeypatch.setattr(loop.F, "cross_entropy", nan_in_third_batch)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(TrainingDivergedError, match="the loss became nan at epoch 1, iteration 3") as raised:
        loop.train(config, run_dir, progress=False)
    assert f"The last good checkpoint is {run_dir / ckpt.LAST}" in str(raised.value)
    state = ckpt.read_checkpoint(run_dir / ckpt.LAST)
    assert (state["epoch"], state["iteration"]) == (0, 2)
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    assert not (run_dir / ckpt.PREVIOUS).exists(), "the failed batch wrote nothing"
