"""`cosplace-xs sweep`: run the stages of a sweep spec (the paper's Tables 2-4) one trial after another.

Each trial is a training run in SWEEP_DIR/<stage>/<trial>/, evaluated on the spec's test sets; a stage that
inherits starts from the previous stage's winner. Started again, a sweep skips finished trials, resumes the
interrupted one and goes on. The report (report.md) is written at the end; see docs/experiments.md.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cosplace_xs.errors import ConfigError, CosplaceError

if TYPE_CHECKING:
    from cosplace_xs.sweep.runner import SweepPlan
    from cosplace_xs.sweep.spec import SweepSpec
    from cosplace_xs.sweep.state import StartPoint

SWEEPS_ROOT = Path("runs/sweeps")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sweep", help="run a sweep spec's stages of trials (resumable), then its report",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", type=Path, help="sweep spec (YAML), e.g. experiments/paper_table2_augmentation.yaml")
    parser.add_argument("--dataset", type=Path, help="dataset root (e.g. /data/sf_xs); replaces the spec's dataset")
    parser.add_argument("--out", type=Path, help=f"sweep folder (default: {SWEEPS_ROOT}/<spec name>)")
    parser.add_argument("--start-from", type=Path, metavar="SWEEP_DIR[/STAGE]",
                        help="start from the winner of another sweep's last stage (or of STAGE), e.g. Table 2's "
                             "for Table 3")
    parser.add_argument("--dry-run", action="store_true", help="print the planned trials and their options only")
    parser.add_argument("--max-trials", type=int, metavar="N", help="stop after N trials (run again to go on)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="run failed trials again (from their last checkpoint when they have one)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def _options(options: dict) -> str:
    from cosplace_xs.sweep.labels import format_value

    return ", ".join(f"{key}={format_value(value)}" for key, value in options.items()) or "(none)"


def _where(path: Path) -> str:
    return f"{path} ({'found' if path.exists() else 'NOT FOUND'})"


def print_plan(spec: SweepSpec, plan: SweepPlan, start: StartPoint | None) -> None:
    """The planned trials, their folders, status and resolved options, and the work left."""
    from cosplace_xs.sweep.runner import WAITING
    from cosplace_xs.sweep.trial import DONE

    trials = plan.trials()
    print(f"sweep {spec.name}: {len(spec.stages)} stages, {len(trials)} trials in {plan.sweep_dir}")
    print(f"dataset: {_where(Path(spec.dataset))}")
    for name in spec.test_sets:
        print(f"test set {name}: {_where(spec.test_set_path(name))}")
    print(f"base options: {_options(spec.base)}")
    if spec.seeds:
        print(f"seeds: {', '.join(map(str, spec.seeds))} (every trial runs once per seed, in <trial>/seed-N/)")
    if start is not None:
        print(f"starting from {start.label} (stage {start.stage} of {start.sweep_dir}): {_options(start.options)}")
    iterations = 0
    winners = {stage.stage.name: stage.winner for stage in plan.stages}
    for stage in plan.stages:
        parent = stage.stage.inherit
        inherits = "nothing" if parent is None else f"the winner of {parent} (" + (
            winners[parent].spec.label if winners[parent] else "not decided yet") + ")"
        print(f"\nstage {stage.stage.name}: metric {stage.stage.metric}; inherits {inherits}; "
              f"options: {_options(stage.stage.overrides)}")
        for trial in stage.trials:
            mark = " *winner*" if trial is stage.winner else ""
            print(f"  [{trial.status}] {trial.spec.label} -> {trial.folder.relative_to(plan.sweep_dir)}{mark}")
            resolved = trial.options if trial.options is not None else {**stage.stage.overrides,
                                                                         **trial.spec.settings}
            after = f" + the winner of {stage.stage.inherit}" if trial.status == WAITING else ""
            print(f"      {_options(resolved)}{after}")
            if trial.error:
                print(f"      error: {trial.error}")
            for unit in trial.units():  # one per seed with `seeds:`
                if unit.status != DONE:
                    config = unit.config or spec.trial_config(stage.stage, trial.spec, {})
                    iterations += config.train.epochs * config.train.iterations_per_epoch
    print(f"\nleft to train: about {iterations:,} iterations")


def _sweep_dir(args: argparse.Namespace, spec: SweepSpec) -> Path:
    return args.out if args.out is not None else SWEEPS_ROOT / spec.name


def run(args: argparse.Namespace) -> int:
    from cosplace_xs.sweep.report import write_report
    from cosplace_xs.sweep.runner import plan_sweep, run_sweep
    from cosplace_xs.sweep.spec import load_spec
    from cosplace_xs.sweep.state import STATE, find_start_point, read_state, stored_start
    from cosplace_xs.sweep.trial import DONE

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("a sweep runs its trials one after another in one process; start it without torchrun")
    if args.max_trials is not None and args.max_trials < 1:
        raise ConfigError(f"option --max-trials={args.max_trials} is out of range: >= 1")
    spec = load_spec(args.spec)
    sweep_dir = _sweep_dir(args, spec)
    state = read_state(sweep_dir)
    if args.dataset is not None:
        spec = spec.with_dataset(args.dataset)
    elif state is not None and state["dataset"] != spec.dataset:
        print(f"dataset of this sweep's first start: {state['dataset']} (pass --dataset to change it)")
        spec = spec.with_dataset(state["dataset"])
    start = find_start_point(args.start_from) if args.start_from is not None else stored_start(state)
    if args.dry_run:
        print_plan(spec, plan_sweep(spec, sweep_dir, start), start)
        return 0
    print(f"sweep folder: {sweep_dir}")
    try:
        plan = run_sweep(spec, sweep_dir, start, args.max_trials, args.retry_failed, not args.no_progress)
    finally:
        if (sweep_dir / STATE).is_file():
            try:
                write_report(sweep_dir)
            except CosplaceError as error:
                print(f"the report could not be written: {error}")
    counts = plan.counts()
    print(f"trials: {', '.join(f'{n} {status}' for status, n in counts.items())}")
    for stage in plan.stages:
        print(f"stage {stage.stage.name}: winner {stage.winner_text()}")
    print(f"report: {sweep_dir / 'report.md'}")
    return 0 if set(counts) == {DONE} else 1
