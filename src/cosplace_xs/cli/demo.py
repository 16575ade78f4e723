"""`cosplace-xs demo`: the main job on the embedded synthetic city, from nothing to a before/after table."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from cosplace_xs.config import RunConfig
from cosplace_xs.data.layout import find_test_set
from cosplace_xs.data.test_set import load_test_set
from cosplace_xs.evaluation.evaluate import evaluate_model
from cosplace_xs.evaluation.inference import Inference
from cosplace_xs.evaluation.model_loading import load_trained_model
from cosplace_xs.model.network import build_model
from cosplace_xs.synthetic.city import city_preset, generate_city
from cosplace_xs.training.loop import train
from cosplace_xs.training.run_files import CURVES, discard_unused_run_dir, new_run_dir

# From random weights on 2 CPU cores: small images and every layer trained (frozen random layers learn nothing)
DEMO_OPTIONS = {
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


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="generate the synthetic city, train ResNet-18 a few minutes, compare before/after",
        description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic_city"), help="where the city goes")
    parser.add_argument("--runs-root", type=Path, default=Path("runs"), help="where the run folder goes")
    parser.add_argument("--preset", default="small", help="size of the city (tiny, small, medium, large)")
    parser.add_argument("--epochs", type=int, default=DEMO_OPTIONS["train.epochs"], help="training epochs")
    parser.add_argument("--iterations-per-epoch", type=int, default=DEMO_OPTIONS["train.iterations_per_epoch"])
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def _recalls(model: torch.nn.Module, test_sets: list, config: RunConfig,
             inference: Inference) -> list[dict[int, float]]:
    return [evaluate_model(model.to(inference.device).eval(), test_set, config.eval, inference).recalls
            for test_set in test_sets]


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    if not (args.data / "city.json").is_file():
        print(f"generating the synthetic city ({args.preset}) in {args.data} ...")
        generate_city(args.data, city_preset(args.preset), progress=not args.no_progress)
    options = {**DEMO_OPTIONS, "train.dataset": str(args.data), "train.epochs": args.epochs,
               "train.iterations_per_epoch": args.iterations_per_epoch}
    config = RunConfig().replace(options, "demo")
    test_sets = [load_test_set(find_test_set(args.data / name).database_dir.parent)
                 for name in ("test", "tokyo_xs/test")]

    torch.manual_seed(config.train.seed)  # the same initial weights as the training run below
    inference = Inference.of_run(config, config.train.device, not args.no_progress)
    before = _recalls(build_model(config.model), test_sets, config, inference)
    run_dir = new_run_dir(args.runs_root, config)
    print(f"training ResNet-18 from random weights in {run_dir} ...")
    try:
        train(config, run_dir, progress=not args.no_progress)
    except BaseException:
        discard_unused_run_dir(run_dir)  # a start refused before its first file leaves no empty folder
        raise
    model, _ = load_trained_model(run_dir / "best.pt", inference.device)
    after = _recalls(model, test_sets, config, inference)

    print(f"\n{'test set':<22}{'queries':>8}{'R@1 before':>12}{'R@1 after':>11}{'R@5 before':>12}{'R@5 after':>11}")
    for test_set, old, new in zip(test_sets, before, after, strict=True):
        print(f"{test_set.name:<22}{test_set.num_queries:>8}{old[1]:>12.1f}{new[1]:>11.1f}"
              f"{old[5]:>12.1f}{new[5]:>11.1f}")
    print(f"\ncurves: {run_dir / CURVES}   total time: {time.perf_counter() - start:.0f} s")
    return 0
