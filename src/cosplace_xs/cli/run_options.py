"""Command-line flags for every field of RunConfig, generated from the dataclasses (one source of truth).

Flags keep the names CosPlace users know (`--M`, `--alpha`, `--groups-num`, `--fc-output-dim`,
`--iterations-per-epoch`, `--classifiers-lr`). Precedence: defaults < `--config FILE` < flags given.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from cosplace_xs.cli.augment_options import add_augment_arguments, augment_config_from_args
from cosplace_xs.config import OPTIMIZERS, PRECISIONS, RunConfig
from cosplace_xs.device import AUTO_WORKERS_TEXT

# group.field -> flag, where the plain field name would be ambiguous or unlike CosPlace's spelling
RENAMES = {
    "loss.s": "--cosface-s",
    "loss.m": "--cosface-m",
    "eval.image_size": "--eval-image-size",
    "eval.batch_size": "--eval-batch-size",
    "eval.num_workers": "--eval-num-workers",
    "train.validate": "--validate",
}
SKIPPED = {"train.dataset", "model.pretrained"}
CHOICES = {"optim.optimizer": OPTIMIZERS, "train.precision": (*PRECISIONS, "auto")}
HELP = {
    "split.M": "cell side in metres of a CosPlace class",
    "split.alpha": "heading sector in degrees of a class",
    "split.N": "cells between classes of one group (group = cell index mod N)",
    "split.L": "sectors between classes of one group (group = sector index mod L)",
    "split.groups_num": "number of groups trained, one per epoch in turn",
    "model.backbone": "resnet18, resnet50, resnet101, resnet152 or vgg16",
    "model.fc_output_dim": "descriptor size D",
    "train.iterations_per_epoch": "batches per epoch",
    "train.checkpoint_every": "iterations between mid-epoch checkpoints (0: at epoch ends only)",
    "train.precision": "auto = fp16 mixed precision on CUDA, fp32 on the CPU; bf16 autocast works on both",
    "train.compile": "torch.compile the model: faster steps (fused BatchNorm, ReLU, pooling) after 10-60 s of "
                     "compilation at the first batch of training and of validation",
    "train.skip_bad_images": "skip (and list) unreadable training images instead of stopping",
}


DEFAULT_SHOWN = {
    "eval.image_size": "the training size",
    "eval.num_workers": AUTO_WORKERS_TEXT,
}


def _flag(key: str) -> str:
    return RENAMES.get(key, "--" + key.split(".")[1].replace("_", "-"))


def _fields() -> list[tuple[str, dataclasses.Field, Any]]:
    defaults = RunConfig()
    result = []
    for group in dataclasses.fields(RunConfig):
        group_default = getattr(defaults, group.name)
        if group.name == "augment":  # its own helper adds these, with --no-augmentation
            continue
        for item in dataclasses.fields(group_default):
            key = f"{group.name}.{item.name}"
            if key not in SKIPPED:
                result.append((key, item, getattr(group_default, item.name)))
    return result


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a flag for every option of a run, grouped as in RunConfig, with the defaults shown."""
    parser.add_argument("--config", type=Path, help="YAML file of options (e.g. a run's config.yaml)")
    pretrained = parser.add_mutually_exclusive_group()
    pretrained.add_argument("--pretrained", dest="model.pretrained", default=argparse.SUPPRESS, metavar="PATH",
                            help="ImageNet weights: 'imagenet' (torchvision weights API, default) or a state dict file")
    pretrained.add_argument("--no-pretrained", dest="model.pretrained", action="store_const", const="none",
                            default=argparse.SUPPRESS, help="start from random weights")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for key, item, default in _fields():
        group = key.split(".")[0]
        if group not in groups:
            groups[group] = parser.add_argument_group(f"{group} options")
        help_text = f"{HELP.get(key, item.name.replace('_', ' '))} (default: {DEFAULT_SHOWN.get(key, default)})"
        kwargs: dict[str, Any] = {"dest": key, "default": argparse.SUPPRESS, "help": help_text}
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, tuple):
            kwargs.update(type=int, nargs="+")
        elif key in CHOICES:
            kwargs["choices"] = CHOICES[key]
        else:
            kwargs["type"] = int if default is None else type(default)
        groups[group].add_argument(_flag(key), **kwargs)
    add_augment_arguments(parser)


def run_config_from_args(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    """Defaults, then the `--config` file, then the flags actually given."""
    config = base or (RunConfig.load(args.config) if getattr(args, "config", None) else RunConfig())
    overrides = {key: value for key, value in vars(args).items() if "." in key and not key.startswith("augment.")}
    if isinstance(overrides.get("eval.recall_values"), list):
        overrides["eval.recall_values"] = tuple(overrides["eval.recall_values"])
    config = config.replace(overrides, "command line")
    return dataclasses.replace(config, augment=augment_config_from_args(args, config.augment))
