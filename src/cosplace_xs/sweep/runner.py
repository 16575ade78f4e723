"""Running a sweep: the stages in order, each trial a training run, each stage's winner carried forward.

The plan is read again from the trial folders before every trial, so a sweep started again skips what is
done, resumes the interrupted run, and goes on; a stage's winner is decided once none of its trials is
left to run, and only then do the stages that inherit it start. With `seeds:` a trial is one run per seed, in
`TRIAL/seed-N/`, and its figures are their mean (the standard deviation beside).
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosplace_xs.config import RunConfig
from cosplace_xs.data.layout import discover_dataset, find_test_set, require_train_dir
from cosplace_xs.data.test_set import TestSet, load_test_set
from cosplace_xs.errors import ConfigError
from cosplace_xs.sweep import trial as trial_files
from cosplace_xs.sweep.spec import StageSpec, SweepSpec, TrialSpec
from cosplace_xs.sweep.state import SPEC_COPY, StartPoint, write_state
from cosplace_xs.sweep.trial import BLOCKED, DONE, FAILED, PARTIAL, PENDING

log = logging.getLogger(__name__)

WAITING = "waiting"  # its options depend on a stage whose winner is not decided yet
UNDECIDED = (PENDING, PARTIAL, WAITING)


@dataclass
class PlannedTrial:
    """A trial as its folder shows it, with the options it runs (or ran) with."""

    stage: str
    spec: TrialSpec
    folder: Path
    status: str
    inherited: dict[str, Any] | None  # the winner's options it starts from; None while unknown
    options: dict[str, Any] | None  # inherited + stage options + its own settings
    config: RunConfig | None
    result: dict[str, Any] | None = None
    metric: float | None = None
    error: str | None = None
    runnable: bool = False  # pending or partial, with known options that match the folder's run
    seed: int | None = None  # the seed of one run of a trial with `seeds:`
    runs: list[PlannedTrial] = field(default_factory=list)  # with `seeds:`, one per seed; this holds their mean

    def units(self) -> list[PlannedTrial]:
        """The training runs of this trial: one per seed, or the trial itself."""
        return self.runs or [self]


@dataclass
class StagePlan:
    stage: StageSpec
    trials: list[PlannedTrial]
    inherited: dict[str, Any] | None
    decided: bool  # no trial is left to run: the winner (if any) is final
    winner: PlannedTrial | None

    def winner_text(self) -> str:
        """The winner's label, saying when it won only among survivors of failed trials."""
        if not self.decided:
            return "not decided yet"
        failed = [trial.spec.label for trial in self.trials if trial.status == FAILED]
        lost = f"{len(failed)} of {len(self.trials)} trials failed ({', '.join(failed)})" if failed else ""
        if self.winner is None:
            return f"none: {lost}" if lost else "none"
        label = self.winner.spec.label
        return f"{label} (best of the finished trials only: {lost})" if lost else label


@dataclass
class SweepPlan:
    sweep_dir: Path
    stages: list[StagePlan] = field(default_factory=list)

    def trials(self) -> list[PlannedTrial]:
        return [trial for stage in self.stages for trial in stage.trials]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for trial in self.trials():
            counts[trial.status] = counts.get(trial.status, 0) + 1
        return counts


def trial_folder(sweep_dir: Path, stage: StageSpec, trial: TrialSpec) -> Path:
    return sweep_dir / stage.name / trial.slug


def seed_folder(trial_folder: Path, seed: int) -> Path:
    return trial_folder / f"seed-{seed}"


def _plan_trial(spec: SweepSpec, stage: StageSpec, trial: TrialSpec, folder: Path,
                inherited: dict[str, Any] | None, seed: int | None = None) -> PlannedTrial:
    status = trial_files.folder_status(folder)
    planned = PlannedTrial(stage.name, trial, folder, status, inherited, None, None, seed=seed)
    planned.result = trial_files.read_result(folder)
    planned.metric = trial_files.metric_value(planned.result, stage.metric)
    planned.error = trial_files.read_error(folder) if status == FAILED else None
    if inherited is None:
        if status != DONE:
            planned.status = WAITING
        return planned
    planned.options = {**inherited, **stage.overrides, **trial.settings}
    try:
        planned.config = spec.trial_config(stage, trial, inherited, seed)
        mismatch = trial_files.config_mismatch(folder, planned.config)
    except ConfigError as error:
        planned.status, planned.error = FAILED, str(error)
        return planned
    if mismatch:
        planned.status, planned.error = FAILED, mismatch
        return planned
    planned.runnable = status in (PENDING, PARTIAL)
    return planned


def _combined_status(runs: list[PlannedTrial]) -> str:
    """Done when every seed is; waiting, pending or partial while one is; else failed (a mean needs all seeds)."""
    statuses = {run.status for run in runs}
    if statuses == {DONE}:
        return DONE
    for status in (WAITING, BLOCKED):
        if status in statuses:
            return status
    if statuses & {PENDING, PARTIAL}:
        return PENDING if statuses == {PENDING} else PARTIAL
    return FAILED


def _mean_and_std(values: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Per `R@N` key: the mean and the sample standard deviation (0 for one seed) over the runs."""
    keys = [key for key in values[0] if key.startswith("R@") and all(key in v for v in values)]
    columns = {key: [float(v[key]) for v in values] for key in keys}
    return ({key: statistics.fmean(column) for key, column in columns.items()},
            {key: statistics.stdev(column) if len(column) > 1 else 0.0 for key, column in columns.items()})


def combined_result(runs: list[PlannedTrial]) -> dict[str, Any]:
    """A result.json-like mean of finished runs: R@N per test set (and val) averaged, `std` beside, times summed."""
    results = [run.result for run in runs if run.result is not None]
    combined: dict[str, Any] = {key: results[0].get(key) for key in ("label", "options", "config", "epochs")}
    combined.update(seeds=[run.seed for run in runs], test={}, std={"test": {}})
    for name in results[0]["test"]:
        combined["test"][name], combined["std"]["test"][name] = _mean_and_std([r["test"][name] for r in results])
    vals = [r["val"] for r in results if r.get("val")]
    combined["val"], combined["std"]["val"] = _mean_and_std(vals) if len(vals) == len(results) else (None, None)
    for key in ("train_seconds", "val_seconds", "test_seconds"):
        combined[key] = sum(r.get(key) or 0.0 for r in results)
    speeds = [r["images_per_s"] for r in results if r.get("images_per_s")]
    combined["images_per_s"] = statistics.fmean(speeds) if speeds else None
    return combined


def _plan_seeds(spec: SweepSpec, stage: StageSpec, trial: TrialSpec, folder: Path,
                inherited: dict[str, Any] | None) -> PlannedTrial:
    """The trial as one run, or with `seeds:` as one run per seed whose mean it holds."""
    if not spec.seeds:
        return _plan_trial(spec, stage, trial, folder, inherited)
    runs = [_plan_trial(spec, stage, trial, seed_folder(folder, seed), inherited, seed) for seed in spec.seeds]
    status = _combined_status(runs)
    planned = PlannedTrial(stage.name, trial, folder, status, inherited, runs[0].options, None, runs=runs)
    planned.error = next((f"seed {run.seed}: {run.error}" for run in runs if run.error), None)
    if status == DONE:
        planned.result = combined_result(runs)
        planned.metric = trial_files.metric_value(planned.result, stage.metric)
    return planned


def _winner(stage: StageSpec, trials: list[PlannedTrial]) -> PlannedTrial | None:
    """The finished trial with the highest metric; ties go to the first listed; failed trials cannot win."""
    best = None
    for trial in trials:
        if trial.status == DONE and trial.metric is not None and (best is None or trial.metric > best.metric):
            best = trial
    return best


def plan_sweep(spec: SweepSpec, sweep_dir: Path, start: StartPoint | None = None) -> SweepPlan:
    """Every trial with its status and resolved options, as far as the finished stages decide them."""
    plan = SweepPlan(sweep_dir)
    by_name: dict[str, StagePlan] = {}
    for stage in spec.stages:
        if stage.inherit is None:
            inherited: dict[str, Any] | None = dict(start.options) if start else {}
        else:
            parent = by_name[stage.inherit]
            inherited = parent.winner.options if parent.decided and parent.winner else None
        trials = [_plan_seeds(spec, stage, trial, trial_folder(sweep_dir, stage, trial), inherited)
                  for trial in stage.trials]
        if stage.inherit is not None and by_name[stage.inherit].decided and inherited is None:
            for trial in trials:
                for unit in ([trial, *trial.runs] if trial.status == WAITING else []):
                    if unit.status == WAITING:
                        unit.status, unit.error = BLOCKED, f"stage '{stage.inherit}' has no finished trial to inherit"
        decided = not any(t.status in UNDECIDED for t in trials)
        stage_plan = StagePlan(stage, trials, inherited, decided, _winner(stage, trials) if decided else None)
        by_name[stage.name] = stage_plan
        plan.stages.append(stage_plan)
    return plan


def state_of(spec: SweepSpec, plan: SweepPlan, start: StartPoint | None) -> dict[str, Any]:
    """The contents of sweep_state.json."""
    return {
        "spec": spec.name, "dataset": spec.dataset, "counts": plan.counts(),
        "start_from": None if start is None else vars(start), "seeds": list(spec.seeds),
        "stages": [{
            "name": s.stage.name, "metric": str(s.stage.metric), "inherits": s.stage.inherit,
            "winner": s.winner.spec.slug if s.winner else None,
            "trials": [{"label": t.spec.label, "slug": t.spec.slug, "folder": f"{s.stage.name}/{t.spec.slug}",
                        "status": t.status, "metric": t.metric, "error": t.error,
                        **({"runs": [{"seed": r.seed, "folder": r.folder.relative_to(plan.sweep_dir).as_posix(),
                                      "status": r.status, "metric": r.metric, "error": r.error} for r in t.runs]}
                           if t.runs else {})} for t in s.trials],
        } for s in plan.stages],
    }


def check_data(spec: SweepSpec) -> None:
    """The dataset's train folder and every test set exist, before hours of training."""
    require_train_dir(discover_dataset(spec.dataset))
    for name in spec.test_sets:
        find_test_set(spec.test_set_path(name))


def _test_sets(spec: SweepSpec, config: RunConfig, cache: dict[tuple, TestSet]) -> dict[str, TestSet]:
    sets = {}
    for name in spec.test_sets:
        key = (name, config.eval.positive_dist_threshold, config.eval.queries_folder)
        if key not in cache:
            cache[key] = load_test_set(spec.test_set_path(name), config.eval.positive_dist_threshold,
                                       queries_folder=config.eval.queries_folder)
        sets[name] = cache[key]
    return sets


def _run_one(spec: SweepSpec, trial: PlannedTrial, cache: dict[tuple[str, float], TestSet], progress: bool) -> None:
    record = {"stage": trial.stage, "label": trial.spec.label, "slug": trial.spec.slug,
              "settings": trial.spec.settings, "inherited": trial.inherited, "options": trial.options,
              **({} if trial.seed is None else {"seed": trial.seed})}
    assert trial.config is not None
    try:
        result = trial_files.run_trial(trial.folder, trial.config, _test_sets(spec, trial.config, cache), record,
                                       progress)
        log.info("trial %s done: %s", trial.folder,
                 ", ".join(f"{name} R@1 {figures['R@1']:.1f}" for name, figures in result["test"].items()))
    except Exception as error:  # a failed trial is recorded and the sweep goes on
        summary = trial_files.record_failure(trial.folder, error)
        log.error("trial %s failed (%s); see %s", trial.folder, summary, trial.folder / trial_files.ERROR)


def run_sweep(spec: SweepSpec, sweep_dir: Path, start: StartPoint | None = None, max_trials: int | None = None,
              retry_failed: bool = False, progress: bool = True) -> SweepPlan:
    """Run every trial not yet done, in stage order (at most `max_trials` in this call); returns the plan
    as it stands at the end. `sweep_dir` holds a copy of the spec and `sweep_state.json`.

    Failed trials stay failed (a restart must not change a winner behind finished stages) unless
    `retry_failed`: then they run again, from their last checkpoint when they have one.
    """
    check_data(spec)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / SPEC_COPY).write_text(spec.source_text)
    if retry_failed:
        for unit in (unit for trial in plan_sweep(spec, sweep_dir, start).trials() for unit in trial.units()):
            if unit.status == FAILED and (unit.folder / trial_files.ERROR).is_file():
                log.info("trying %s again (it failed: %s)", unit.folder, unit.error)
                (unit.folder / trial_files.ERROR).unlink()
    cache: dict[tuple[str, float], TestSet] = {}
    attempted: set[Path] = set()
    while True:
        plan = plan_sweep(spec, sweep_dir, start)
        write_state(sweep_dir, state_of(spec, plan, start))
        units = [unit for trial in plan.trials() for unit in trial.units()]
        todo = [t for t in units if t.runnable and t.folder not in attempted]
        if not todo or (max_trials is not None and len(attempted) >= max_trials):
            return plan
        trial = todo[0]
        attempted.add(trial.folder)
        seed = "" if trial.seed is None else f", seed {trial.seed}"
        log.info("trial %d/%d: stage %s, %s%s -> %s", units.index(trial) + 1, len(units), trial.stage,
                 trial.spec.label, seed, trial.folder)
        _run_one(spec, trial, cache, progress)
