"""End-to-end training on the tiny synthetic city: run files, group schedule, exact resume, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from cosplace_xs import checkpoints as ckpt
from cosplace_xs.config import RunConfig
from cosplace_xs.errors import ConfigError, TrainingDivergedError
from cosplace_xs.training import loop
from cosplace_xs.training.loop import train
from cosplace_xs.training.resume import RESUME_CHANGES

TINY = {
    "train.image_size": 32,
    "train.batch_size": 4,
    "train.epochs": 3,
    "train.iterations_per_epoch": 3,
    "train.checkpoint_every": 2,
    "train.num_workers": 0,
    "split.min_images_per_class": 2,
    "split.groups_num": 2,
    "model.pretrained": "none",
    "model.fc_output_dim": 16,
    "eval.batch_size": 16,
    "eval.num_workers": 0,
    "optim.lr": 1e-3,
}


@pytest.fixture
def config(tiny_city: Path, tmp_path: Path, monkeypatch) -> RunConfig:
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))
    return RunConfig().replace({**TINY, "train.dataset": str(tiny_city)})


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return ckpt.read_checkpoint(run_dir / ckpt.LAST)["model"]


def test_run_writes_every_file_and_walks_the_groups(config: RunConfig, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = train(config, run_dir, progress=False)
    for name in ("config.yaml", "train.log", "metrics.csv", "curves.png", "last.pt", "previous.pt", "best.pt"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tensorboard").iterdir())
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [int(r["group"]) for r in rows] == [0, 1, 0]  # epoch e trains group e mod groups_num
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(0 <= float(r["val_R@1"]) <= 100 for r in rows)
    assert result.best_r1 == max(float(r["val_R@1"]) for r in rows)
    assert RunConfig.load(run_dir / "config.yaml") == config
    state = ckpt.read_checkpoint(run_dir / ckpt.LAST)
    assert (state["epoch"], state["iteration"]) == (3, 0)
    assert len(state["classifiers"]) == 2


def _interrupt_after(monkeypatch, steps: int) -> None:
    real_step = loop._train_step
    calls = {"n": 0}

    def step(*args, **kwargs):
        if calls["n"] == steps:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "_train_step", step)


@pytest.mark.parametrize("stop_after", [2, 5])  # mid-epoch checkpoint of epoch 1; epoch 2's first batches
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(config: RunConfig, tmp_path: Path, monkeypatch,
                                                               stop_after: int) -> None:
    straight = tmp_path / "straight"
    straight.mkdir()
    train(config, straight, progress=False)

    interrupted = tmp_path / "interrupted"
    interrupted.mkdir()
    _interrupt_after(monkeypatch, stop_after)
    with pytest.raises(KeyboardInterrupt):
        train(config, interrupted, progress=False)
    monkeypatch.undo()
    partial = ckpt.read_checkpoint(interrupted / ckpt.LAST)
    assert (partial["epoch"], partial["iteration"]) < (3, 0)
    train(config, interrupted, resume=True, progress=False)

    expected, got = _weights(straight), _weights(interrupted)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert list(csv.DictReader((straight / "metrics.csv").open()))[-1]["loss"] == \
        list(csv.DictReader((interrupted / "metrics.csv").open()))[-1]["loss"]


def test_nan_loss_stops_with_the_iteration_and_keeps_the_last_checkpoint(config: RunConfig, tmp_path: Path,
                                                                         monkeypatch) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    real = loop.F.cross_entropy
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(loop.F, "cross_entropy", poisoned)
    with pytest.raises(TrainingDivergedError, match="epoch 2, iteration 2"):
        train(config, run_dir, progress=False)
    state = ckpt.read_checkpoint(run_dir / ckpt.LAST)
    assert (state["epoch"], state["iteration"]) == (1, 0)
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())


def test_batch_larger_than_a_group_is_a_clear_error(config: RunConfig, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--batch-size=4096 is larger than the \d+ classes of group 0"):
        train(config.replace({"train.batch_size": 4096}), tmp_path, progress=False)


def test_more_groups_than_exist_is_a_clear_error(config: RunConfig, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="groups-num"):
        train(config.replace({"split.groups_num": 10_000}), tmp_path, progress=False)


def test_every_option_a_resume_may_change_is_an_option_of_a_run() -> None:
    options = {f"{group}.{key}" for group, values in RunConfig().to_dict().items() for key in values}
    assert sorted(set(RESUME_CHANGES) - options) == []
