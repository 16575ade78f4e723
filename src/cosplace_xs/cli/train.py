"""`cosplace-xs train`: train a CosPlace model on a dataset folder, or resume a run."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cosplace_xs.cli.run_options import add_run_arguments, run_config_from_args
from cosplace_xs.config import RunConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.training import run_files
from cosplace_xs.training.loop import train
from cosplace_xs.training.run_files import new_run_dir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a CosPlace model (or --resume a run)",
                                   description=__doc__)
    parser.add_argument("dataset", nargs="?", help="dataset root holding train/ (and val/ for validation)")
    parser.add_argument("--runs-root", type=Path, default=Path("runs"), help="where new run folders go")
    parser.add_argument("--run-dir", type=Path, help="exact folder for this run (must not hold a run)")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue an interrupted run from its last checkpoint, with its own options")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_run_arguments(parser)
    parser.set_defaults(run=run)


def prepare(args: argparse.Namespace) -> tuple[RunConfig, Path, bool]:
    """The options and folder of the run the command asks for."""
    if args.resume is not None:
        config_file = args.resume / run_files.CONFIG
        if not config_file.is_file():
            raise ConfigError(f"--resume {args.resume}: no {run_files.CONFIG} there; is it a run folder?")
        return run_config_from_args(args, RunConfig.load(config_file, complete=True)), args.resume, True
    config = run_config_from_args(args)
    if args.dataset is not None:
        config = config.replace({"train.dataset": str(args.dataset)})
    launched_by_torchrun = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if launched_by_torchrun and args.run_dir is None:
        raise ConfigError("under torchrun, pass --run-dir so that every process writes to the same run folder")
    if args.run_dir is not None:
        if (args.run_dir / run_files.CONFIG).exists() and os.environ.get("RANK", "0") == "0":
            raise ConfigError(f"--run-dir {args.run_dir}: already holds a run; use --resume {args.run_dir} "
                              "to continue it, or choose another folder")
        args.run_dir.mkdir(parents=True, exist_ok=True)
        return config, args.run_dir, False
    return config, new_run_dir(args.runs_root, config), False


def run(args: argparse.Namespace) -> int:
    config, run_dir, resume = prepare(args)
    print(f"run folder: {run_dir}")
    result = train(config, run_dir, resume=resume, progress=not args.no_progress)
    best = "n/a" if result.best_r1 is None else f"{result.best_r1:.1f}"
    print(f"done: best val R@1 {best}; checkpoints, metrics.csv and curves.png in {run_dir}")
    return 0
