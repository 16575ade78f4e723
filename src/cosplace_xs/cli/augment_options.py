"""Command-line flags of the augmentation options, generated from AugmentConfig.

Switches come in pairs (`--cutout/--no-cutout`, `--gaussian-noise/--no-gaussian-noise`, ...).
`--no-augmentation` turns every switch off; switches given as well turn theirs back on
(`--no-augmentation --cutout`: cutout only). Destinations are `augment.<field>`, as in `run_options`.
"""

from __future__ import annotations

import argparse
import dataclasses

from cosplace_xs.cli.option_flags import add_group_arguments, given_values
from cosplace_xs.config import AugmentConfig
from cosplace_xs.options import COMMAND_LINE

NO_AUGMENTATION = "no_augmentation"
PREFIX = "augment."


def _switches() -> list[str]:
    return [item.name for item in dataclasses.fields(AugmentConfig) if isinstance(item.default, bool)]


def add_augment_arguments(parser: argparse.ArgumentParser) -> None:
    """Add an `augmentation options` group with a flag for every AugmentConfig field and `--no-augmentation`."""
    group = parser.add_argument_group("augmentation options (defaults: the official pipeline with the paper's "
                                      "ColorJitter strengths; docs/fidelity.md)")
    group.add_argument("--no-augmentation", dest=NO_AUGMENTATION, action="store_true",
                       help="turn every augmentation off (switches given as well turn theirs back on)")
    add_group_arguments(group, AugmentConfig, PREFIX)


def augment_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The augmentation options the command line sets: `--no-augmentation`, then the flags actually given."""
    values: dict[str, object] = dict.fromkeys(_switches(), False) if getattr(args, NO_AUGMENTATION, False) else {}
    values.update(given_values(args, PREFIX))
    return values


def augment_config_from_args(args: argparse.Namespace, base: AugmentConfig | None = None) -> AugmentConfig:
    """`base` (defaults if None) with the command line's augmentation options applied."""
    values = {**dataclasses.asdict(base or AugmentConfig()), **augment_overrides(args)}
    return AugmentConfig.build(values, COMMAND_LINE)
