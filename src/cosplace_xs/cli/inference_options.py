"""The options of `eval` and `predict`, generated from the schema: how the model runs (`InferenceConfig`) and
how a test set is scored (the positive threshold and the N of Recall@N, from the run's `EvalConfig`).

The scoring options default to the checkpoint's own values (see `evaluation.inference.scoring_options`); the
way the model runs is this machine's business and defaults to the schema's defaults.

The model comes from a checkpoint (`--checkpoint`) or from a state dict of the official CosPlace or EigenPlaces
network (`--weights`): the latter runs as the official evaluation does, every image at its own size unless
--image-size is given, and is scored with the default positive threshold and Recall@N.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosplace_xs.cli.option_flags import add_group_arguments, given_values
from cosplace_xs.config import EvalConfig, InferenceConfig
from cosplace_xs.options import COMMAND_LINE

if TYPE_CHECKING:  # the library is imported where it runs, so that --help answers without torch
    from cosplace_xs.config import RunConfig
    from cosplace_xs.model.network import GeoLocalizationNet

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


def add_checkpoint_argument(parser: argparse._ActionsContainer, required: bool = False) -> None:
    """--checkpoint: a checkpoint file or a run folder, as every command that reads a trained model names it."""
    parser.add_argument("--checkpoint", type=Path, required=required, metavar="CKPT_OR_RUN_DIR",
                        help="a checkpoint file, or a run folder (its best.pt, else last.pt)")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--checkpoint or --weights: one of them names the model."""
    source = parser.add_mutually_exclusive_group(required=True)
    add_checkpoint_argument(source)
    source.add_argument("--weights", type=Path, metavar="FILE",
                        help="a state dict of the official CosPlace or EigenPlaces network, as their train.py saves "
                             "it or their torch.hub releases hold it (e.g. ResNet18_512_cosplace.pth); backbone and "
                             "D are read from its tensors; images at their own size unless --image-size is given")


def model_file(args: argparse.Namespace) -> Path:
    """The file the model comes from: the checkpoint (a run folder's best.pt, else last.pt) or the --weights file."""
    from cosplace_xs.checkpoints import resolve_checkpoint

    return resolve_checkpoint(args.checkpoint) if args.weights is None else args.weights


def read_model(args: argparse.Namespace) -> tuple[GeoLocalizationNet, RunConfig]:
    """The model of --checkpoint or --weights on the CPU, and the options it runs and is scored with."""
    from cosplace_xs.evaluation.model_loading import read_published_model, read_trained_model

    return read_trained_model(args.checkpoint) if args.weights is None else read_published_model(args.weights)
