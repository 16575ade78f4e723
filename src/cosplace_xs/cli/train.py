"""`cosplace-xs train`: train a CosPlace model on a dataset folder, or resume a run."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import yaml

from cosplace_xs.cli.run_options import add_run_arguments, run_config_from_args
from cosplace_xs.config import RunConfig
from cosplace_xs.errors import ConfigError, DatasetLayoutError
from cosplace_xs.training import run_files  # no torch: the library modules that need it are imported where used
from cosplace_xs.training.run_files import new_run_dir, require_writable


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a CosPlace model (or --resume a run)",
                                   description=__doc__)
    parser.add_argument("dataset", nargs="?",
                        help="dataset root holding train/ (and val/ for validation); with --resume, where the run's "
                             "dataset moved to")
    parser.add_argument("--runs-root", type=Path, default=Path("runs"), help="where new run folders go")
    parser.add_argument("--run-dir", type=Path, help="exact folder for this run (must not hold a run)")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue an interrupted run from its last checkpoint, with its own options (--epochs "
                             "extends it; options that would change how it trains are refused)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--print-config", action="store_true",
                        help="print the options the run would train with (YAML: defaults, then --config, then the "
                             "flags given; with --resume, the run's own) and exit, creating no folder")
    add_run_arguments(parser)
    parser.set_defaults(run=run)


def _resumed_config(args: argparse.Namespace) -> RunConfig:
    """The run's own options with those given now, refused (before any work) where a resume cannot take them."""
    from cosplace_xs.training.resume import DATASET, resume_changes

    config_file = args.resume / run_files.CONFIG
    if not config_file.is_file():
        raise ConfigError(f"--resume {args.resume}: no {run_files.CONFIG} there; is it a run folder?")
    require_writable(args.resume, "--resume")
    stored = RunConfig.load(config_file, complete=True)
    config = run_config_from_args(args, stored)
    if args.dataset is not None:
        if not Path(args.dataset).is_dir():
            raise DatasetLayoutError(f"{args.dataset}: dataset folder not found (given with --resume "
                                     f"{args.resume}); pass the folder the run's dataset moved to")
        config = config.replace({DATASET: args.dataset})
    elif not Path(config.train.dataset).is_dir():
        raise DatasetLayoutError(f"{config.train.dataset}: the dataset folder of the run {args.resume} is not found; "
                                 f"if it moved, pass its new place: train DATASET --resume {args.resume}")
    resume_changes(stored, config, f"--resume {args.resume}")
    return config


def requested_config(args: argparse.Namespace) -> RunConfig:
    """The options of the run the command asks for: the run's own ones with --resume, else defaults < --config
    < flags, with the dataset path made absolute (the run resumes from any working directory)."""
    from cosplace_xs.training.resume import DATASET, absolute_dataset

    if args.resume is not None:
        return _resumed_config(args)
    config = run_config_from_args(args)
    if args.dataset is not None:
        config = config.replace({DATASET: args.dataset})
    return absolute_dataset(config)


def prepare(args: argparse.Namespace) -> tuple[RunConfig, Path, bool, bool]:
    """The options and folder of the run the command asks for, whether it resumes, and whether this command
    created the folder."""
    config = requested_config(args)
    if args.resume is not None:
        return config, args.resume, True, False
    launched_by_torchrun = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if launched_by_torchrun and args.run_dir is None:
        raise ConfigError("under torchrun, pass --run-dir so that every process writes to the same run folder")
    if args.run_dir is not None:
        if (args.run_dir / run_files.CONFIG).exists() and os.environ.get("RANK", "0") == "0":
            raise ConfigError(f"--run-dir {args.run_dir}: already holds a run; use --resume {args.run_dir} "
                              "to continue it, or choose another folder")
        require_writable(args.run_dir, "--run-dir")
        created = not args.run_dir.exists()
        args.run_dir.mkdir(parents=True, exist_ok=True)
        return config, args.run_dir, False, created
    return config, new_run_dir(args.runs_root, config), False, True


def _complete(run_dir: Path, config: RunConfig) -> bool:
    """Say so and return True when the run to resume has trained all its epochs (nothing is run or written)."""
    from cosplace_xs import checkpoints as ckpt
    from cosplace_xs.training.resume import check_epochs, read_progress

    progress = read_progress(run_dir)
    if progress is None:  # no readable checkpoint: resume itself says why, or starts again
        return False
    check_epochs(progress, config.train.epochs, f"--resume {run_dir}")
    if progress.epoch < config.train.epochs or progress.iteration:
        return False
    best = "n/a (no validation)" if progress.best_r1 is None else f"{progress.best_r1:.1f}"
    checkpoints = ", ".join(str(run_dir / name) for name in (ckpt.BEST, ckpt.LAST) if (run_dir / name).is_file())
    print(f"{run_dir}: the run is complete: all {progress.epoch} epochs trained, best val R@1 {best}; "
          f"checkpoints: {checkpoints}. To train it longer, resume with --epochs N (N > {progress.epoch})")
    return True


def run(args: argparse.Namespace) -> int:
    from cosplace_xs.training.loop import TrainingInterrupted, train

    if args.print_config:
        print(yaml.safe_dump(requested_config(args).to_dict(), sort_keys=False), end="")
        return 0
    config, run_dir, resume, created = prepare(args)
    if resume and _complete(run_dir, config):
        return 0
    print(f"run folder: {run_dir}")
    try:
        result = train(config, run_dir, resume=resume, progress=not args.no_progress)
    except TrainingInterrupted as stopped:  # last.pt written; where it stopped and how to resume are logged
        return 128 + stopped.signum
    except BaseException:
        # a start refused before its first file (options, data, weights, a busy folder) leaves no empty folder
        if created and run_files.discard_unused_run_dir(run_dir):
            print(f"removed the run folder {run_dir}: the run stopped before writing anything in it")
        raise
    best = "n/a" if result.best_r1 is None else f"{result.best_r1:.1f}"
    print(f"done: best val R@1 {best} after {result.train_seconds:.0f} s of training; checkpoints, metrics.csv and "
          f"curves.png in {run_dir}")
    return 0
