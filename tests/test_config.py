"""Option groups: validation messages, YAML round trip, overrides, unknown keys."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from cosplace_xs.config import AugmentConfig, EvalConfig, ModelConfig, RunConfig, SplitConfig, TrainConfig
from cosplace_xs.device import resolve_num_workers
from cosplace_xs.errors import ConfigError


def test_defaults_are_the_methods() -> None:
    split = SplitConfig()
    assert (split.M, split.alpha, split.N, split.L, split.min_images_per_class, split.groups_num) == (
        10, 30, 5, 2, 10, 8)
    augment = AugmentConfig()
    assert (augment.brightness, augment.contrast, augment.saturation, augment.hue) == (0.8, 0.3, 0.7, 0.0)
    assert (augment.rotation_degrees, augment.cutout_size, augment.cutout_p) == (10.0, 16, 0.5)
    assert ModelConfig().fc_output_dim == 512


@pytest.mark.parametrize(
    ("build", "option"),
    [
        (lambda: SplitConfig(M=-10), "--M"),
        (lambda: SplitConfig(alpha=25), "--alpha"),
        (lambda: ModelConfig(fc_output_dim=0), "--fc-output-dim"),
        (lambda: TrainConfig(batch_size=0), "--batch-size"),
        (lambda: AugmentConfig(cutout_p=1.5), "--cutout-p"),
        (lambda: EvalConfig(num_workers=-1), "--eval-num-workers"),
    ],
)
def test_out_of_range_options_name_the_option(build, option: str) -> None:
    with pytest.raises(ConfigError, match=f"option {option}="):
        build()


def test_inference_decodes_in_the_main_process_on_the_cpu_unless_told_otherwise() -> None:
    assert EvalConfig().num_workers is None
    assert resolve_num_workers(None, torch.device("cpu")) == 0
    assert resolve_num_workers(None, torch.device("cuda")) == 4
    assert resolve_num_workers(3, torch.device("cpu")) == 3


def test_yaml_round_trip(tmp_path: Path) -> None:
    config = RunConfig().replace({"split.alpha": 45, "optim.optimizer": "asgd", "eval.recall_values": (1, 3)})
    config.save(tmp_path / "c.yaml")
    assert RunConfig.load(tmp_path / "c.yaml") == config


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['alpah'\] in 'split'"):
        RunConfig().replace({"split.alpah": 45})
    (tmp_path / "bad.yaml").write_text("trian: {}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown option group\(s\) \['trian'\]"):
        RunConfig.load(tmp_path / "bad.yaml")


def test_a_yaml_file_goes_through_the_same_coercion_and_checks_as_flags(tmp_path: Path) -> None:
    # PyYAML reads 1e-5 (no dot) as a string; numbers written as strings are read as numbers, as flags are
    (tmp_path / "c.yaml").write_text("optim: {lr: 1e-5}\ntrain: {batch_size: '32', epochs: 3.0}\n")
    config = RunConfig.load(tmp_path / "c.yaml")
    assert (config.optim.lr, config.train.batch_size, config.train.epochs) == (1e-5, 32, 3)
    assert isinstance(config.train.batch_size, int) and isinstance(config.optim.lr, float)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train: {batch_size: 2.5}", "option train.batch_size=2.5 must be an integer"),
        ("train: {batch_size: [1, 2]}", "option train.batch_size=1,2 is not a number, expected an integer"),
        ("train: {batch_size: big}", "option train.batch_size='big' is not a number, expected an integer"),
        ("train: {validate: 'false'}", "option train.validate='false' must be true or false"),
        ("train: {skip_bad_images: 'no'}", "option train.skip_bad_images='no' must be true or false"),
        ("optim: {weight_decay: .inf}", "option optim.weight_decay=inf must be a finite number"),
        ("optim: {asgd_lambda: .nan}", "option optim.asgd_lambda=nan must be a finite number"),
        ("optim: {momentum: -0.5}", "option optim.momentum=-0.5 is out of range: [0, 1]"),
        ("train: {seed: -1}", "option train.seed=-1 is out of range: [0, 4294967295]"),
        ("train: {image_size: 100000}", "option train.image_size=100000 is out of range: 16 to 4096 pixels"),
        ("train: {device: mps}", "option train.device='mps' is out of range: auto, cpu, cuda or cuda:N"),
        ("eval: {recall_values: [1, x]}", "option eval.recall_values=1,'x' is not a number"),
        ("train: 3", "'train' must be a mapping of options"),
        ("- a list", "expected a mapping of option groups"),
    ],
)
def test_bad_values_in_a_yaml_file_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as caught:
        RunConfig.load(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_a_binary_file_is_not_a_config(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError, match=f"{path}: not a valid YAML file of options"):
        RunConfig.load(path)


def test_a_runs_own_config_must_be_complete(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.yaml"
    RunConfig().save(path)
    assert RunConfig.load(path, complete=True) == RunConfig()
    text = path.read_text()
    path.write_text(text[: text.index("augment:")])  # torn: the last groups are missing
    with pytest.raises(ConfigError, match=r"incomplete: the option group 'augment' is missing"):
        RunConfig.load(path, complete=True)
    # a file written before an option existed: the option takes its default, with a warning
    path.write_text(text.replace("  validate: true\n", ""))
    with caplog.at_level(logging.WARNING, logger="cosplace_xs.config"):
        assert RunConfig.load(path, complete=True) == RunConfig()
    assert "train.validate is not in the file (written by an older version); using its default True" in caplog.text
    path.write_text("")
    with pytest.raises(ConfigError, match="expected a mapping of option groups"):
        RunConfig.load(path, complete=True)
