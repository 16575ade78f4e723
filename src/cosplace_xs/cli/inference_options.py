"""The options of `eval` and `predict`, generated from the schema: how the model runs (`InferenceConfig`) and
how a test set is scored (the positive threshold and the N of Recall@N, from the run's `EvalConfig`).

The scoring options default to the checkpoint's own values (see `evaluation.inference.scoring_options`); the
way the model runs is this machine's business and defaults to the schema's defaults.
"""

from __future__ import annotations

import argparse
from typing import Any

from cosplace_xs.cli.option_flags import add_group_arguments, given_values
from cosplace_xs.config import EvalConfig, InferenceConfig
from cosplace_xs.options import COMMAND_LINE

INFERENCE = "inference_"
SCORING = "scoring_"
# the checkpoint's unless given
SCORING_OPTIONS = ("positive_dist_threshold", "recall_values", "test_method", "majority_weight")


def add_inference_arguments(parser: argparse.ArgumentParser, scoring: tuple[str, ...] = SCORING_OPTIONS) -> None:
    """The flags of `InferenceConfig`, of the `scoring` options the command uses, and --no-progress."""
    add_group_arguments(parser, InferenceConfig, INFERENCE)
    group = parser.add_argument_group("scoring (default: the checkpoint's own values)")
    add_group_arguments(group, EvalConfig, SCORING, only=scoring)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def inference_options(args: argparse.Namespace) -> InferenceConfig:
    """The inference options given, each checked and named as its flag, the others at their defaults."""
    return InferenceConfig.build(given_values(args, INFERENCE), COMMAND_LINE)


def scoring_given(args: argparse.Namespace) -> dict[str, Any]:
    """The scoring options given on the command line, by field name, checked and converted now: a wrong value
    fails before the checkpoint is read."""
    given = given_values(args, SCORING)
    checked = EvalConfig.build(given, COMMAND_LINE)
    return {name: getattr(checked, name) for name in given}
