"""`cosplace-xs demo`: the main job on the embedded synthetic city, from nothing to a before/after table."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosplace_xs.cli.option_flags import add_group_arguments, given_values
from cosplace_xs.config import CITY_PRESETS, RunConfig, TrainConfig
from cosplace_xs.options import COMMAND_LINE

if TYPE_CHECKING:
    from torch import nn

    from cosplace_xs.data.split import TrainSplit
    from cosplace_xs.data.test_set import TestSet
    from cosplace_xs.evaluation.inference import Inference

# From random weights on 2 CPU cores: small images and every layer trained (frozen random layers learn nothing).
# Batch size and groups are the most a city holds (see `fit_to_city`): the tiny city has 12 classes a group.
DEMO_OPTIONS: dict[str, Any] = {
    "train.image_size": 64,
    "train.batch_size": 32,
    "train.epochs": 10,
    "train.iterations_per_epoch": 160,
    "train.checkpoint_every": 100,
    "split.min_images_per_class": 4,
    "split.groups_num": 10,
    "model.pretrained": "none",
    "model.train_all_layers": True,
    "optim.lr": 1e-3,
}
TEST_SETS = ("test", "tokyo_xs/test")
TRAIN = "train."
OWN_FLAGS = ("epochs", "iterations_per_epoch")  # training options the demo takes from the command line


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="generate the synthetic city, train ResNet-18 a few minutes, compare before/after",
        description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic_city"), help="where the city goes")
    parser.add_argument("--runs-root", type=Path, default=Path("runs"), help="where the run folder goes")
    parser.add_argument("--preset", default="small", choices=CITY_PRESETS,
                        help="size of the city, when it is generated (default: small)")
    add_group_arguments(parser, TrainConfig, TRAIN, only=OWN_FLAGS,
                        defaults={name: DEMO_OPTIONS[TRAIN + name] for name in OWN_FLAGS})
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def fit_to_city(split: TrainSplit, options: dict[str, Any] = DEMO_OPTIONS) -> dict[str, Any]:
    """`options` with groups_num lowered to the groups the city's split has, and batch_size to the classes of
    its smallest group used (a batch holds distinct classes of one group)."""
    groups_num = min(options["split.groups_num"], len(split.groups))
    classes = min(len(group.class_ids) for group in split.groups[:groups_num])
    return {**options, "split.groups_num": groups_num, "train.batch_size": min(options["train.batch_size"], classes)}


def demo_config(data: Path, given: dict[str, Any], cache_dir: Path | None = None) -> RunConfig:
    """The demo's training options, with the `given` ones (by `RunConfig` key), for the city in `data` (its
    split is cached for the training that follows)."""
    from cosplace_xs.data.split import build_split

    options = {**DEMO_OPTIONS, **given, "train.dataset": str(data)}
    split = build_split(data / "train", RunConfig().replace(options, "demo").split, cache_dir)
    return RunConfig().replace(fit_to_city(split, options), "demo")


def _recalls(model: nn.Module, test_sets: list[TestSet], config: RunConfig,
             inference: Inference) -> list[dict[int, float]]:
    from cosplace_xs.evaluation.evaluate import evaluate_model

    return [evaluate_model(model.to(inference.device).eval(), test_set, config.eval, inference).recalls
            for test_set in test_sets]


def _table(test_sets: list[TestSet], before: list[dict[int, float]],
           after: list[dict[int, float]] | None = None) -> str:
    """Recall@1 and @5 of each test set before training, and after it once known."""
    phases = [("before", before)] + ([] if after is None else [("after", after)])
    columns = [(n, name, recalls) for n in (1, 5) for name, recalls in phases]
    lines = [f"{'test set':<22}{'queries':>8}" + "".join(f"{f'R@{n} {name}':>{len(name) + 6}}"
                                                       for n, name, _ in columns)]
    for index, test_set in enumerate(test_sets):
        lines.append(f"{test_set.name:<22}{test_set.num_queries:>8}" + "".join(
            f"{recalls[index][n]:>{len(name) + 6}.1f}" for n, name, recalls in columns))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    given = given_values(args, TRAIN)  # checked as the schema checks them, before any library is imported
    checked = TrainConfig.build(given, COMMAND_LINE)
    given = {TRAIN + name: getattr(checked, name) for name in given}

    import torch

    from cosplace_xs.data.layout import find_test_set
    from cosplace_xs.data.test_set import load_test_set
    from cosplace_xs.evaluation.inference import Inference
    from cosplace_xs.evaluation.model_loading import load_trained_model
    from cosplace_xs.model.network import build_model
    from cosplace_xs.synthetic.city import city_preset, generate_city
    from cosplace_xs.training.loop import train
    from cosplace_xs.training.run_files import CURVES, discard_unused_run_dir, new_run_dir

    if not (args.data / "city.json").is_file():
        print(f"generating the synthetic city ({args.preset}) in {args.data} ...", flush=True)
        generate_city(args.data, city_preset(args.preset), progress=not args.no_progress)
    config = demo_config(args.data, given)
    test_sets = [load_test_set(find_test_set(args.data / name).database_dir.parent) for name in TEST_SETS]

    torch.manual_seed(config.train.seed)  # the same initial weights as the training run below
    inference = Inference.of_run(config, config.train.device, not args.no_progress)
    before = _recalls(build_model(config.model), test_sets, config, inference)
    print(f"\nuntrained ResNet-18 (random weights):\n{_table(test_sets, before)}\n", flush=True)
    run_dir = new_run_dir(args.runs_root, config)
    train_options = config.train
    print(f"training it in {run_dir}: {train_options.epochs} epochs x {train_options.iterations_per_epoch} "
          f"batches x {train_options.batch_size} images, {config.split.groups_num} groups (the time left is logged "
          "after each epoch) ...", flush=True)
    try:
        train(config, run_dir, progress=not args.no_progress)
    except BaseException:
        discard_unused_run_dir(run_dir)  # a start refused before its first file leaves no empty folder
        raise
    model, _ = load_trained_model(run_dir / "best.pt", inference.device)
    after = _recalls(model, test_sets, config, inference)

    print(f"\n{_table(test_sets, before, after)}")
    print(f"\ncurves: {run_dir / CURVES}   total time: {time.perf_counter() - start:.0f} s")
    return 0
