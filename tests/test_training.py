"""End-to-end training on the tiny synthetic city: run files, group schedule, exact resume, errors."""

from __future__ import annotations

import csv
import signal
from pathlib import Path

import pytest
import torch
import yaml

from cosplace_xs import checkpoints as ckpt
from cosplace_xs.cli import main
from cosplace_xs.config import RunConfig
from cosplace_xs.device import choose_precision
from cosplace_xs.errors import ConfigError, TrainingDivergedError
from cosplace_xs.evaluation.model_loading import load_trained_model
from cosplace_xs.training import loop
from cosplace_xs.training.distributed import DistributedContext
from cosplace_xs.training.loop import TrainingInterrupted, train
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


def _chosen(config: RunConfig) -> str:
    """The precision a CPU run of `config` trains in (and records)."""
    return choose_precision(config.train.precision, torch.device("cpu"))[0]


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
    # the run records the precision `auto` chose on this machine, so that its resume trains in it anywhere
    assert RunConfig.load(run_dir / "config.yaml") == config.replace({"train.precision": _chosen(config)})
    state = ckpt.read_checkpoint(run_dir / ckpt.LAST)
    assert (state["epoch"], state["iteration"]) == (3, 0)
    assert len(state["classifiers"]) == 2


def test_every_epoch_records_its_training_seconds(config: RunConfig, tmp_path: Path) -> None:
    result = train(config, tmp_path / "run", progress=False)
    images = config.train.batch_size * config.train.iterations_per_epoch
    for row in result.history:
        assert row["train_seconds"] > 0
        assert row["images_per_s"] == pytest.approx(images / row["train_seconds"], rel=1e-12)
    assert result.train_seconds == sum(row["train_seconds"] for row in result.history)
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert [float(r["train_seconds"]) for r in rows] == [row["train_seconds"] for row in result.history]


def test_best_pt_holds_what_evaluation_needs_and_last_pt_what_a_resume_needs(config: RunConfig,
                                                                               tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = train(config, run_dir, progress=False)
    best, last = ckpt.read_checkpoint(run_dir / ckpt.BEST), ckpt.read_checkpoint(run_dir / ckpt.LAST)
    assert sorted(best) == ["best_r1", "config", "epoch", "format", "history", "model"]
    assert sorted(last) == sorted(["format", "config", "split_key", "model", "epoch", "iteration", "best_r1",
                                   "history", "model_optimizer", "classifiers", "classifier_optimizers", "scaler",
                                   "epoch_loss_sum", "epoch_images", "epoch_seconds"])
    assert best["best_r1"] == result.best_r1 == max(row["val_R@1"] for row in best["history"])
    assert best["history"][-1]["epoch"] == best["epoch"]
    for name in (ckpt.BEST, ckpt.LAST):  # eval and predict load either
        model, loaded_config = load_trained_model(run_dir / name, torch.device("cpu"))
        assert loaded_config == config.replace({"train.precision": _chosen(config)})
        weights = ckpt.read_checkpoint(run_dir / name)["model"]
        assert all(torch.equal(value, weights[key]) for key, value in model.state_dict().items())


def test_curves_are_drawn_once_at_the_end_and_at_an_interruption(config: RunConfig, tmp_path: Path,
                                                                 monkeypatch) -> None:
    drawn: list[list[int]] = []
    step_counts: list[int] = []
    monkeypatch.setattr(loop, "plot_curves", lambda histories, path, step_losses: (drawn.append(
        [row["epoch"] for history in histories.values() for row in history]), step_counts.append(
        sum(len(losses) for _, losses in step_losses.values()))))
    real_loss = loop.F.cross_entropy
    _interrupt_after(monkeypatch, 5)  # in epoch 2
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "run", progress=False)
    assert drawn == []  # a KeyboardInterrupt that is no stop signal: no safe point, nothing drawn
    monkeypatch.setattr(loop.F, "cross_entropy", real_loss)
    stop_at_next_safe_point(monkeypatch)
    with pytest.raises(TrainingInterrupted):
        train(config, tmp_path / "run", resume=True, progress=False)
    assert drawn == [[1]]
    monkeypatch.setattr(loop.StopRequest, "agreed", lambda self, context, device: None)
    train(config, tmp_path / "run", resume=True, progress=False)
    assert drawn == [[1], [1, 2, 3]]
    # the loss of every step, read back from TensorBoard once each, steps done again after a resume included
    assert step_counts[-1] == config.train.epochs * config.train.iterations_per_epoch


def test_the_batch_slice_is_computed_once_per_run(config: RunConfig, tmp_path: Path, monkeypatch) -> None:
    calls = []
    real = DistributedContext.batch_slice
    monkeypatch.setattr(DistributedContext, "batch_slice", lambda self, size: calls.append(size) or real(self, size))
    train(config, tmp_path / "run", progress=False)
    assert calls == [config.train.batch_size]


def _interrupt_after(monkeypatch, steps: int) -> None:
    """A KeyboardInterrupt in the forward pass of step `steps + 1`."""
    real = loop.F.cross_entropy
    calls = {"n": 0}

    def loss(*args, **kwargs):
        if calls["n"] == steps:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(loop.F, "cross_entropy", loss)


def stop_at_next_safe_point(monkeypatch) -> None:
    """As if SIGINT came during the next step."""
    monkeypatch.setattr(loop.StopRequest, "agreed", lambda self, context, device: signal.SIGINT)


@pytest.fixture(scope="module")
def straight(tiny_city: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder of TINY trained without interruption, shared by the resume tests of this module."""
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    run_dir.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COSPLACE_XS_CACHE", str(run_dir.parent / "cache"))
        train(RunConfig().replace({**TINY, "train.dataset": str(tiny_city)}), run_dir, progress=False)
    return run_dir


@pytest.mark.parametrize("stop_after", [2, 5])  # mid-epoch checkpoint of epoch 1; epoch 2's first batches
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(config: RunConfig, straight: Path, tmp_path: Path,
                                                               monkeypatch, stop_after: int) -> None:

    interrupted = tmp_path / "interrupted"
    interrupted.mkdir()
    _interrupt_after(monkeypatch, stop_after)
    with pytest.raises(KeyboardInterrupt):
        train(config, interrupted, progress=False)
    monkeypatch.undo()
    partial = ckpt.read_checkpoint(interrupted / ckpt.LAST)
    assert (partial["epoch"], partial["iteration"]) < (3, 0)
    (interrupted / ckpt.BEST).write_bytes(b"not read by a resume")
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


def test_print_config_shows_the_resolved_options_and_touches_no_folder(tiny_city: Path, tmp_path: Path, capsys,
                                                                       monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    options = tmp_path / "options.yaml"
    options.write_text("train:\n  epochs: 7\nmodel:\n  fc_output_dim: 32\n")
    before = sorted(tmp_path.rglob("*"))
    code = main(["train", str(tiny_city), "--config", str(options), "--fc-output-dim", "64", "--print-config"])
    assert code == 0
    expected = RunConfig().replace({"train.dataset": str(tiny_city.resolve()), "train.epochs": 7,
                                    "model.fc_output_dim": 64})
    assert yaml.safe_load(capsys.readouterr().out) == expected.to_dict()
    assert sorted(tmp_path.rglob("*")) == before  # no run folder, no runs/

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    expected.save(run_dir / "config.yaml")
    before = sorted(tmp_path.rglob("*"))
    assert main(["train", "--resume", str(run_dir), "--epochs", "9", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == expected.replace({"train.epochs": 9}).to_dict()
    assert sorted(tmp_path.rglob("*")) == before
