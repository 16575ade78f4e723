"""The one resolver of how a model runs (evaluation/inference.py): each rule on a hand-made case, and the
values `eval` and `predict` take from the checkpoint (flag given > checkpoint's value > default)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import run_command, tiny_config, write_test_set

from cosplace_xs import checkpoints as ckpt
from cosplace_xs import predict as predict_library
from cosplace_xs.cli import eval as eval_command
from cosplace_xs.cli import predict as predict_command
from cosplace_xs.config import MAX_IMAGE_PIXELS, POSITIVE_DIST_THRESHOLD, EvalConfig, InferenceConfig, RunConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.evaluation.inference import NATIVE, Inference, ShorterSide, eval_image_size, scoring_options
from cosplace_xs.model.network import GeoLocalizationNet
from cosplace_xs.options import COMMAND_LINE

CPU = torch.device("cpu")


def _run(eval_size: int | None = None, train_size: int = 32, shorter_side: bool = False) -> RunConfig:
    return RunConfig().replace({"train.image_size": train_size, "eval.image_size": eval_size,
                                "eval.shorter_side": shorter_side})


@pytest.mark.parametrize(("options", "run", "expected"), [
    pytest.param(InferenceConfig(native_size=True), _run(eval_size=40), NATIVE, id="--native-size first"),
    pytest.param(InferenceConfig(image_size=48), _run(eval_size=40), 48, id="--image-size over the run's"),
    pytest.param(InferenceConfig(), _run(eval_size=40), 40, id="the run's eval.image_size"),
    pytest.param(InferenceConfig(), _run(), 32, id="else the run's train.image_size"),
    pytest.param(None, _run(), 32, id="a training run's validation"),
    pytest.param(InferenceConfig(shorter_side=True), _run(), ShorterSide(32), id="--shorter-side: the training size"),
    pytest.param(InferenceConfig(shorter_side=True, image_size=48), _run(eval_size=40), ShorterSide(48),
                 id="--shorter-side --image-size N"),
    pytest.param(InferenceConfig(shorter_side=True), _run(eval_size=40), ShorterSide(40),
                 id="--shorter-side: the run's eval.image_size"),
    pytest.param(None, _run(eval_size=40, shorter_side=True), ShorterSide(40), id="the run's eval.shorter_side"),
    pytest.param(InferenceConfig(image_size=48), _run(shorter_side=True), 48, id="--image-size N is a square"),
    pytest.param(InferenceConfig(native_size=True), _run(shorter_side=True), NATIVE, id="--native-size over it"),
])
def test_the_eval_image_size_rule(options: InferenceConfig | None, run: RunConfig, expected: object) -> None:
    assert eval_image_size(run, options) == expected


def test_native_size_and_shorter_side_exclude_each_other() -> None:
    with pytest.raises(ConfigError, match=r"option --shorter-side/--native-size=True,True .* give one of them"):
        InferenceConfig.build({"native_size": True, "shorter_side": True}, COMMAND_LINE)
    with pytest.raises(ConfigError, match=r"option --eval-shorter-side/--eval-native-size=True,True .* give one"):
        EvalConfig.build({"native_size": True, "shorter_side": True}, COMMAND_LINE)


def test_resolve_decides_device_precision_and_workers_once() -> None:
    resolved = Inference.resolve(InferenceConfig(device="cpu", batch_size=7, max_image_pixels=5000), 24, False)
    assert resolved == Inference(CPU, "fp32", 7, 0, 24, False, 5000)  # auto: fp32 and no worker on the CPU
    given = Inference.resolve(InferenceConfig(device="cpu", precision="bf16", num_workers=3), NATIVE, True)
    assert (given.precision, given.num_workers, given.image_size, given.max_pixels) == ("bf16", 3, NATIVE,
                                                                                        MAX_IMAGE_PIXELS)
    assert given.at_size(16) == Inference(CPU, "bf16", 32, 3, 16, True)
    with pytest.raises(ConfigError, match="option --precision=fp16 needs a CUDA device"):
        Inference.resolve(InferenceConfig(device="cpu", precision="fp16"), 16, False)


def test_a_runs_validation_uses_its_eval_group_and_its_training_options() -> None:
    config = RunConfig().replace({"eval.batch_size": 5, "eval.num_workers": 2, "train.precision": "bf16",
                                  "train.max_image_pixels": 9000, "train.image_size": 64})
    assert Inference.of_run(config, CPU, False) == Inference(CPU, "bf16", 5, 2, 64, False, 9000)
    assert Inference.of_run(config, "cpu", True).device == CPU  # the option's spelling resolves the same


def test_scoring_options_come_from_the_flag_else_the_checkpoint_else_the_default() -> None:
    run = RunConfig().replace({"eval.positive_dist_threshold": 15.0})
    assert scoring_options(run, {}).positive_dist_threshold == 15.0
    assert scoring_options(run, {"positive_dist_threshold": 40.0}).positive_dist_threshold == 40.0
    assert scoring_options(RunConfig(), {}).positive_dist_threshold == POSITIVE_DIST_THRESHOLD
    assert scoring_options(run, {"recall_values": (1, 2)}).recall_values == (1, 2)
    assert scoring_options(RunConfig(), {}) == EvalConfig()


def _checkpoint(path: Path, **eval_options: object) -> Path:
    config = tiny_config().replace({f"eval.{key}": value for key, value in eval_options.items()})
    ckpt.write_checkpoint({"config": config.to_dict(), "model": GeoLocalizationNet("resnet18", 32).state_dict()},
                          path)
    return path


@pytest.mark.parametrize(("flags", "threshold", "recalls"), [
    pytest.param([], 15.0, ["R@1", "R@3"], id="the checkpoint's"),
    pytest.param(["--positive-dist-threshold", "40", "--recall-values", "2"], 40.0, ["R@2"], id="the flags'"),
])
def test_eval_scores_with_the_checkpoints_threshold_and_recall_values_unless_given(
        tmp_path: Path, flags: list[str], threshold: float, recalls: list[str]) -> None:
    line_set = write_test_set(tmp_path / "street", [(20.0 * i, 0.0) for i in range(6)], [(1.0, 0.0), (41.0, 0.0)])
    checkpoint = _checkpoint(tmp_path / "best.pt", positive_dist_threshold=15.0, recall_values=[1, 3])
    argv = ["eval", "--checkpoint", str(checkpoint), str(line_set), "--out", str(tmp_path / "out"), "--device",
            "cpu", "--num-workers", "0", "--no-progress", *flags]
    assert run_command(eval_command, argv) == 0
    data = json.loads(next((tmp_path / "out").glob("eval-*.json")).read_text())
    assert data["positive_dist_threshold"] == threshold
    assert [key for key in data["results"][0] if key.startswith("R@")] == recalls


@pytest.mark.parametrize(("flags", "radius"), [
    pytest.param([], 15.0, id="the checkpoint's"),
    pytest.param(["--positive-dist-threshold", "40"], 40.0, id="the flag's"),
])
def test_predict_uses_the_same_threshold_as_eval(tmp_path: Path, monkeypatch, flags: list[str],
                                                 radius: float) -> None:
    street = write_test_set(tmp_path / "street", [(30.0 * i, 0.0) for i in range(4)], [(0.0, 1.0)])
    checkpoint = _checkpoint(tmp_path / "best.pt", positive_dist_threshold=15.0)
    used, real = [], predict_library.predict

    def recording(*args, **kwargs):
        used.append(kwargs["radius"])
        return real(*args, **kwargs)

    monkeypatch.setattr(predict_library, "predict", recording)  # the command imports it when it runs
    photo = next((street / "queries").iterdir())
    argv = ["predict", "--checkpoint", str(checkpoint), "--database", str(street / "database"), str(photo),
            "--k", "2", "--out", str(tmp_path / "out"), "--device", "cpu", "--num-workers", "0", "--no-progress",
            *flags]
    assert run_command(predict_command, argv) == 0
    assert used == [radius]
