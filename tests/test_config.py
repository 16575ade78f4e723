"""Option groups: validation messages, YAML round trip, overrides, unknown keys."""

from __future__ import annotations

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
