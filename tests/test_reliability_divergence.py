"""A NaN or infinite loss stops training at once, naming the batch, before any weight is touched: the last
good checkpoint stays as it was, and a resumed run goes on as if nothing had happened."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from cosplace_xs import checkpoints as ckpt
from cosplace_xs.cli import main
from cosplace_xs.config import RunConfig
from cosplace_xs.errors import TrainingDivergedError
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


def _huge_lr_from_the_start(run_dir: Path, tiny_train_args: tuple[str, ...], reference_run: Path) -> list[str]:
    return [*tiny_train_args, "--run-dir", str(run_dir), "--lr", "1e39", "--checkpoint-every", "1"]


def _huge_lr_after_a_checkpoint(run_dir: Path, tiny_train_args: tuple[str, ...], reference_run: Path) -> list[str]:
    """The finished reference run resumed for a 3rd epoch at a learning rate no weight survives."""
    shutil.copytree(reference_run, run_dir)
    return ["train", "--resume", str(run_dir), "--epochs", "3", "--lr", "1e39", "--checkpoint-every", "1",
            "--no-progress"]


# case -> (how the run is started, the last good checkpoint the error names, or None)
HUGE_LR = {
    "huge --lr, before any checkpoint": (_huge_lr_from_the_start, None),
    "huge --lr, after a checkpoint": (_huge_lr_after_a_checkpoint, ckpt.LAST),
}


@pytest.mark.parametrize("case", list(HUGE_LR))
def test_non_finite_weights_are_never_checkpointed_and_the_error_names_the_last_good_checkpoint(
        case: str, tiny_train_args, reference_run: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """--lr 1e39 (finite) turns the weights infinite in one step while that step's loss is still finite: the
    checkpoint due after it is refused, and the one on disk stays as it was."""
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))
    start, good = HUGE_LR[case]
    run_dir = tmp_path / "run"
    argv = start(run_dir, tiny_train_args, reference_run)
    before = {path.name: path.read_bytes() for path in run_dir.glob("*.pt")}

    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    epoch = 3 if good else 1
    named = f"The last good checkpoint is {run_dir / good}" if good else "No checkpoint was written yet"
    assert len(errors) == 1 and errors[0].startswith(
        f"error: the weights became NaN or infinite by epoch {epoch}, iteration 1 ("), errors
    assert errors[0].endswith(f"); training stopped without checkpointing them. {named}; lower --lr or "
                              "--classifiers-lr, or use --precision fp32"), errors
    assert {path.name: path.read_bytes() for path in run_dir.glob("*.pt")} == before, "no checkpoint written"
    for path in run_dir.glob("*.pt"):
        assert not ckpt.non_finite_weights(ckpt.read_checkpoint(path))
    assert not list(run_dir.glob(".*.tmp"))


def _with_a_nan_weight(reference_run: Path, folder: Path, poison: float) -> Path:
    """A copy of the reference run whose best.pt holds one non-finite weight, written as training writes."""
    state = ckpt.read_checkpoint(reference_run / ckpt.BEST)
    weights = dict(state["model"])
    name = next(key for key, value in weights.items() if value.is_floating_point())
    weights[name] = weights[name].clone()
    weights[name][(0,) * weights[name].dim()] = poison
    state["model"] = weights
    shutil.copytree(reference_run, folder)
    ckpt.write_checkpoint({k: v for k, v in state.items() if k != "format"}, folder / ckpt.BEST)
    return folder / ckpt.BEST


@pytest.mark.parametrize("command", ["eval --checkpoint file, NaN", "eval --checkpoint run folder, inf",
                                     "predict --checkpoint file, NaN"])
def test_evaluating_a_checkpoint_with_non_finite_weights_is_a_clear_error(command: str, tiny_city: Path,
                                                                         reference_run: Path, tmp_path: Path,
                                                                         capsys) -> None:
    run_dir = tmp_path / "run"
    best = _with_a_nan_weight(reference_run, run_dir, float("inf") if command.endswith("inf") else float("nan"))
    test_set = tiny_city / "test"
    given = run_dir if "run folder" in command else best
    argv = ["predict", str(next((test_set / "queries").iterdir())), "--checkpoint", str(given), "--database",
            str(test_set / "database")] if command.startswith("predict") else \
        ["eval", str(test_set), "--checkpoint", str(given)]
    listing = sorted(path.name for path in run_dir.iterdir())

    assert main([*argv, "--no-progress", "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert "R@1" not in captured.out
    assert [line for line in captured.err.splitlines() if line.startswith("error: ")] == [
        f"error: {best}: holds NaN or infinite weights (1 tensors, e.g. model.backbone.0.weight); the run that wrote "
        f"it diverged. Use an earlier checkpoint of the run (e.g. {run_dir / ckpt.PREVIOUS}), or train again with a "
        "lower --lr or --classifiers-lr"]
    assert sorted(path.name for path in run_dir.iterdir()) == listing, "no result file written"
