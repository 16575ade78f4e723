"""Sweeps end to end on the tiny synthetic city: results, winners, inheritance, restart, failures, CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from cosplace_xs.cli import main
from cosplace_xs.config import RunConfig
from cosplace_xs.sweep import trial as trial_files
from cosplace_xs.sweep.runner import WAITING, plan_sweep, run_sweep
from cosplace_xs.sweep.spec import SweepSpec, load_spec
from cosplace_xs.sweep.state import find_start_point, read_state
from cosplace_xs.training import loop

SMOKE = Path(__file__).resolve().parents[1] / "experiments" / "synthetic" / "smoke.yaml"


@pytest.fixture(scope="module")
def spec(tiny_city: Path) -> SweepSpec:
    return load_spec(SMOKE).with_dataset(tiny_city)


@dataclass
class Restarts:
    """The smoke sweep run to its end in three goes: one trial, then Ctrl-C in the next, then the rest."""

    sweep_dir: Path
    statuses: list[list[str]]  # the trials' statuses after each of the first two goes
    train_calls: list[tuple[str, bool]]  # (trial folder, resume) of the last go
    first_result_stamps: tuple[int, int]  # mtime of the first trial's result.json after the first and last go


def _counting_train(calls: list[tuple[str, bool]], fail_in: str | None = None):
    real = trial_files.train

    def counting(config: RunConfig, run_dir: Path, resume: bool = False, progress: bool = True):
        calls.append((run_dir.name, resume))
        if fail_in in (run_dir.name, "every trial"):
            raise RuntimeError("boom")
        return real(config, run_dir, resume=resume, progress=progress)

    return counting


@pytest.fixture(scope="module")
def restarts(spec: SweepSpec, tmp_path_factory: pytest.TempPathFactory) -> Restarts:
    sweep_dir = tmp_path_factory.mktemp("sweep")
    first = sweep_dir / "rotation" / "rotation-5-5" / "result.json"
    statuses, calls = [], []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COSPLACE_XS_CACHE", str(sweep_dir.parent / "cache"))
        statuses.append([t.status for t in run_sweep(spec, sweep_dir, max_trials=1, progress=False).trials()])
        stamp = first.stat().st_mtime_ns

        real_step, steps = loop.F.cross_entropy, []

        def interrupted_step(*args, **kwargs):  # Ctrl-C in the second batch, after the first one's checkpoint
            if len(steps) == 1:
                raise KeyboardInterrupt
            steps.append(1)
            return real_step(*args, **kwargs)

        patch.setattr(loop.F, "cross_entropy", interrupted_step)
        with pytest.raises(KeyboardInterrupt):
            run_sweep(spec, sweep_dir, progress=False)
        patch.setattr(loop.F, "cross_entropy", real_step)
        statuses.append([t.status for t in plan_sweep(spec, sweep_dir).trials()])

        patch.setattr(trial_files, "train", _counting_train(calls))
        run_sweep(spec, sweep_dir, progress=False)
        run_sweep(spec, sweep_dir, progress=False)  # a finished sweep trains nothing more
    return Restarts(sweep_dir, statuses, calls, (stamp, first.stat().st_mtime_ns))


@pytest.fixture(scope="module")
def finished(restarts: Restarts) -> Path:
    return restarts.sweep_dir


@pytest.fixture(autouse=True)
def split_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))


def _result(folder: Path) -> dict:
    return json.loads((folder / "result.json").read_text())


def test_every_trial_is_trained_evaluated_and_the_best_wins(spec: SweepSpec, finished: Path) -> None:
    state = read_state(finished)
    assert state["counts"] == {"done": 4}
    assert (finished / "spec.yaml").read_text() == SMOKE.read_text()
    for stage in spec.stages:
        results = [_result(finished / stage.name / trial.slug) for trial in stage.trials]
        for trial, result in zip(stage.trials, results, strict=True):
            folder = finished / stage.name / trial.slug
            for name in ("config.yaml", "metrics.csv", "best.pt", "last.pt", "train.log"):
                assert (folder / name).is_file(), folder / name
            assert set(result["test"]) == {"test", "tokyo_xs"}
            assert all(0 <= result["test"][s][f"R@{n}"] <= 100 for s in result["test"] for n in (1, 5, 10, 20))
            assert result["test"]["test"]["num_queries"] == 30 and result["epochs"] == 1
            assert result["label"] == trial.label and result["settings"] == trial.settings
        figures = [r["test"]["test"]["R@1"] for r in results]
        expected = stage.trials[figures.index(max(figures))].slug  # index() finds the first of equal values
        recorded = next(s for s in state["stages"] if s["name"] == stage.name)
        assert recorded["winner"] == expected
        assert [t["metric"] for t in recorded["trials"]] == figures


def test_the_second_stage_starts_from_the_first_stages_winner(spec: SweepSpec, finished: Path) -> None:
    rotation, lr = spec.stages
    winner = rotation.trial(read_state(finished)["stages"][0]["winner"])
    degrees = winner.settings["augment.rotation_degrees"]
    for trial, expected_lr in zip(lr.trials, (1e-4, 1e-3), strict=True):
        config = RunConfig.load(finished / "lr" / trial.slug / "config.yaml")
        assert (config.augment.rotation, config.augment.rotation_degrees) == (True, degrees)
        assert config.optim.lr == expected_lr
        assert _result(finished / "lr" / trial.slug)["inherited"] == {
            "augment.rotation": True, "train.epochs": 1, "augment.rotation_degrees": degrees}


def test_a_restarted_sweep_skips_finished_trials_and_resumes_the_interrupted_one(restarts: Restarts) -> None:
    assert restarts.statuses == [["done", "pending", WAITING, WAITING], ["done", "partial", WAITING, WAITING]]
    assert restarts.train_calls == [("rotation-20-20", True), ("lr-0p0001", False), ("lr-0p001", False)]
    assert restarts.first_result_stamps[0] == restarts.first_result_stamps[1]  # not trained again


def test_a_failing_trial_is_recorded_cannot_win_and_the_sweep_goes_on(
        spec: SweepSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sweep_dir = tmp_path / "sweep"
    calls: list[tuple[str, bool]] = []
    monkeypatch.setattr(trial_files, "train", _counting_train(calls, fail_in="rotation-5-5"))
    plan = run_sweep(spec, sweep_dir, max_trials=2, progress=False)
    assert [name for name, _ in calls] == ["rotation-5-5", "rotation-20-20"]
    failed, good = plan.stages[0].trials
    assert (failed.status, good.status) == ("failed", "done")
    assert failed.error == "RuntimeError: boom"
    error_file = (sweep_dir / "rotation" / "rotation-5-5" / "error.txt").read_text()
    assert error_file.startswith("RuntimeError: boom") and "Traceback" in error_file
    assert plan.stages[0].winner is good
    assert read_state(sweep_dir)["stages"][0]["trials"][0]["error"] == "RuntimeError: boom"
    # the next stage is planned from the trial that did not fail
    assert all(t.options["augment.rotation_degrees"] == 20 for t in plan.stages[1].trials)
    # failed trials stay failed when the sweep starts again, unless asked to retry them
    again = plan_sweep(spec, sweep_dir).stages[0].trials[0]
    assert again.status == "failed" and not again.runnable
    plan = run_sweep(spec, sweep_dir, max_trials=1, retry_failed=True, progress=False)
    assert calls[-1] == ("rotation-5-5", False) and plan.stages[0].trials[0].status == "failed"
    assert plan.stages[0].winner.spec.slug == "rotation-20-20" and plan.stages[1].trials[1].status == "pending"


def test_a_stage_without_a_finished_trial_blocks_the_stages_that_inherit_it(
        spec: SweepSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sweep_dir = tmp_path / "sweep"
    calls: list[tuple[str, bool]] = []
    monkeypatch.setattr(trial_files, "train", _counting_train(calls, fail_in="every trial"))
    plan = run_sweep(spec, sweep_dir, progress=False)
    assert len(calls) == 2 and plan.counts() == {"failed": 2, "blocked": 2}
    assert plan.stages[0].winner is None
    assert "stage 'rotation' has no finished trial" in plan.stages[1].trials[0].error
    assert not (sweep_dir / "lr").exists()


def test_runs_of_other_options_are_not_taken_for_this_spec(spec: SweepSpec, finished: Path) -> None:
    changed = spec.__class__(**{**vars(spec), "base": {**spec.base, "train.batch_size": 2}})
    trials = plan_sweep(changed, finished).trials()
    assert trials[0].status == "failed" and not trials[0].runnable
    assert "train.batch_size: 4 there, 2 in the spec" in trials[0].error
    assert plan_sweep(spec.with_dataset("/moved/city"), finished).counts() == {"done": 4}  # the data may move


def test_start_from_takes_the_winner_of_another_sweep(finished: Path) -> None:
    state = read_state(finished)
    last = find_start_point(finished)
    assert (last.stage, last.label) == ("lr", next(t["label"] for t in state["stages"][1]["trials"]
                                                   if t["slug"] == state["stages"][1]["winner"]))
    assert "optim.lr" in last.options and "augment.rotation_degrees" in last.options
    assert find_start_point(finished / "rotation").stage == "rotation"


def test_the_command_line_dry_run_and_a_finished_sweep(tiny_city: Path, finished: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "planned"
    assert main(["sweep", str(SMOKE), "--dataset", str(tiny_city), "--out", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "[pending] Rotation(-5,5) -> rotation/rotation-5-5" in printed
    assert "augment.rotation=true, train.epochs=1, augment.rotation_degrees=5" in printed
    assert "[waiting] lr=0.0001 -> lr/lr-0p0001" in printed and "+ the winner of rotation" in printed
    assert not out.exists()

    # started again without --dataset, a finished sweep uses its own dataset, trains nothing, reports
    (finished / "report.md").unlink(missing_ok=True)
    assert main(["sweep", str(SMOKE), "--out", str(finished), "--no-progress"]) == 0
    assert "trials: 4 done" in capsys.readouterr().out
    assert (finished / "report.md").is_file()
