"""Command-line flags for every option of a training run, generated from the schema of `config.py`.

Precedence: defaults < `--config FILE` < flags given. Every value, from a flag or from the file, passes the
schema's coercion and range checks.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cosplace_xs.cli.augment_options import add_augment_arguments, augment_overrides
from cosplace_xs.cli.option_flags import add_group_arguments, given_values
from cosplace_xs.config import RunConfig
from cosplace_xs.options import COMMAND_LINE


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a flag for every option of a run, grouped as in RunConfig, with the defaults shown."""
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="YAML file of options (e.g. a run's config.yaml); flags given win over it")
    pretrained = parser.add_mutually_exclusive_group()
    pretrained.add_argument("--pretrained", dest="model.pretrained", default=argparse.SUPPRESS, metavar="PATH",
                            help="ImageNet weights: 'imagenet' (torchvision weights API, default) or a state dict file")
    pretrained.add_argument("--no-pretrained", dest="model.pretrained", action="store_const", const="none",
                            default=argparse.SUPPRESS, help="start from random weights")
    for name, group_cls in RunConfig.groups().items():
        if name == "augment":  # its own helper adds these, with --no-augmentation
            continue
        add_group_arguments(parser.add_argument_group(f"{name} options"), group_cls, f"{name}.")
    add_augment_arguments(parser)


def command_line_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The options given on the command line, as `{group: {key: value}}`."""
    overrides = {name: given_values(args, f"{name}.") for name in RunConfig.groups() if name != "augment"}
    overrides["augment"] = augment_overrides(args)
    return {name: values for name, values in overrides.items() if values}


def run_config_from_args(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    """Defaults, then the `--config` file, then the flags actually given."""
    config = base or (RunConfig.load(args.config) if getattr(args, "config", None) else RunConfig())
    return config.replace(command_line_overrides(args), COMMAND_LINE)
