"""The sweep report, from trial folders with hand-set figures: tables, the winner, Fig. 3, curves, time."""

from __future__ import annotations

import csv
import json
import shutil
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from cosplace_xs.cli import main
from cosplace_xs.cli.sweep import print_plan
from cosplace_xs.errors import ConfigError
from cosplace_xs.sweep.report import write_report
from cosplace_xs.sweep.runner import plan_sweep, state_of
from cosplace_xs.sweep.spec import load_spec
from cosplace_xs.sweep.state import find_start_point, read_state, write_state

SPEC = """\
name: report_check
dataset: data/city
test_sets: {sf_xs: test, tokyo_xs: ../tokyo_xs/test}
stages:
  - name: rotation
    epochs: 1
    trials:
      - {label: "Rotation(-15,15)", augment.rotation_degrees: 15}
      - {label: "Rotation(-10,10)", augment.rotation_degrees: 10}
      - {label: "Rotation(-45,45)", augment.rotation_degrees: 45}
    paper:
      "Rotation(-10,10)": {sf_xs: {R@1: 19.1, R@5: 32.1}, tokyo_xs: {R@1: 30.8, R@5: 50.8}}
  - name: backbones
    inherit: previous
    metric: val:R@1
    grid:
      model.backbone: [resnet18, vgg16]
      model.fc_output_dim: [128, 512]
    paper:
      vgg16: {sf_xs: {R@1: 41.2, R@5: 55.6}}
"""

# (sf_xs R@1, tokyo_xs R@1, val R@1) per trial folder; R@5 = R@1 + 10; None: the trial failed
FIGURES = {
    "rotation/rotation-15-15": (18.0, 30.0, 10.0),
    "rotation/rotation-10-10": (20.0, 31.0, 9.0),
    "rotation/rotation-45-45": None,
    "backbones/backbone-resnet18-fc-output-dim-128": (25.0, 35.0, 30.0),
    "backbones/backbone-resnet18-fc-output-dim-512": (27.0, 36.0, 35.0),
    "backbones/backbone-vgg16-fc-output-dim-128": (26.0, 40.0, 40.0),
    "backbones/backbone-vgg16-fc-output-dim-512": (29.0, 41.0, 38.0),
}


def _fake_trial(folder: Path, config, figures: tuple[float, float, float] | None, options: dict) -> None:
    """What a trial leaves: config.yaml, metrics.csv (two epochs), result.json or error.txt."""
    folder.mkdir(parents=True)
    config.save(folder / "config.yaml")
    if figures is None:
        (folder / "error.txt").write_text("RuntimeError: out of memory\n\nTraceback ...\n")
        return
    sf, tokyo, val = figures
    (folder / "metrics.csv").write_text("epoch,group,loss,images_per_s,val_R@1,val_R@5\n"
                                        f"1,0,9.0,100.0,{val - 5},{val + 5}\n2,1,8.0,120.0,{val},{val + 10}\n")
    test = {name: {"R@1": r1, "R@5": r1 + 10, "R@10": r1 + 20, "R@20": r1 + 30, "seconds": 2.0}
            for name, r1 in (("sf_xs", sf), ("tokyo_xs", tokyo))}
    result = {"label": folder.name, "options": options, "config": config.to_dict(), "epochs": 2, "test": test,
              "val": {"epoch": 2, "R@1": val, "R@5": val + 10}, "train_seconds": 60.0, "images_per_s": 110.0,
              "val_seconds": 5.0, "test_seconds": 4.0}
    (folder / "result.json").write_text(json.dumps(result))


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(textwrap.dedent(SPEC))
    spec = load_spec(spec_file)
    sweep_dir = tmp_path / "sweep"
    inherited = {"train.epochs": 1, "augment.rotation_degrees": 10.0}  # the winner of `rotation`
    for stage, start in zip(spec.stages, ({}, inherited), strict=True):
        for trial in stage.trials:
            folder = sweep_dir / stage.name / trial.slug
            options = {**start, **stage.overrides, **trial.settings}
            _fake_trial(folder, spec.trial_config(stage, trial, start), FIGURES[f"{stage.name}/{trial.slug}"],
                        options)
    shutil.copy(spec_file, sweep_dir / "spec.yaml")
    write_state(sweep_dir, state_of(spec, plan_sweep(spec, sweep_dir), None))
    return sweep_dir


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_stage_tables_have_the_papers_layout_and_mark_the_winner(sweep_dir: Path) -> None:
    write_report(sweep_dir)
    rows = _csv(sweep_dir / "report" / "rotation.csv")
    assert list(rows[0]) == ["setting", "status", "winner", "sf_xs R@1", "sf_xs R@5", "tokyo_xs R@1", "tokyo_xs R@5",
                             "paper sf_xs R@1", "paper sf_xs R@5", "paper tokyo_xs R@1", "paper tokyo_xs R@5"]
    assert [r["setting"] for r in rows] == ["Rotation(-15,15)", "Rotation(-10,10)", "Rotation(-45,45)"]
    assert [r["winner"] for r in rows] == ["0", "1", "0"]  # 20.0 beats 18.0; the failed trial cannot win
    assert (rows[1]["sf_xs R@1"], rows[1]["sf_xs R@5"], rows[1]["paper tokyo_xs R@5"]) == ("20.0", "30.0", "50.8")
    assert rows[2]["status"] == "failed: RuntimeError: out of memory" and rows[2]["sf_xs R@1"] == ""
    markdown = (sweep_dir / "report" / "rotation.md").read_text().splitlines()
    assert markdown[0] == "| Setting | sf_xs R@1 | sf_xs R@5 | tokyo_xs R@1 | tokyo_xs R@5 | ★ |"
    assert markdown[3] == "| **Rotation(-10,10)** | **20.0** (19.1) | **30.0** (32.1) | **31.0** (30.8) | " \
                          "**41.0** (50.8) | ★ |"
    assert markdown[4].startswith("| Rotation(-45,45) | failed: RuntimeError: out of memory |")


def test_a_val_metric_gets_its_column_and_backbones_their_table4(sweep_dir: Path) -> None:
    write_report(sweep_dir)
    rows = _csv(sweep_dir / "report" / "backbones.csv")
    assert [r["winner"] for r in rows] == ["0", "0", "1", "0"]  # by val R@1: 30, 35, 40, 38
    assert rows[2]["val R@1"] == "40.0"
    best = _csv(sweep_dir / "report" / "backbones_backbones.csv")
    assert [(r["backbone"], r["best setting"], r["sf_xs R@1"], r["winner"]) for r in best] == [
        ("resnet18", "backbone=resnet18, fc_output_dim=512", "27.0", "0"),
        ("vgg16", "backbone=vgg16, fc_output_dim=128", "26.0", "1")]
    assert (best[1]["paper sf_xs R@1"], best[0]["paper sf_xs R@1"]) == ("41.2", "")


def test_plots_open_and_the_index_links_everything(sweep_dir: Path) -> None:
    index = write_report(sweep_dir)
    report = sweep_dir / "report"
    for name in ("backbones_descriptor_size.png", "rotation_curves.png", "backbones_curves.png"):
        with Image.open(report / name) as image:
            assert image.size[0] > 300 and image.size[1] > 200
    assert not (report / "rotation_descriptor_size.png").exists()  # rotation varies neither backbone nor D
    text = index.read_text()
    for name in ("rotation.md", "rotation.csv", "backbones.csv", "backbones_backbones.csv", "timing.csv",
                 "backbones_descriptor_size.png", "rotation_curves.png"):
        assert f"(report/{name})" in text, name
    assert "| rotation | sf_xs:R@1 | — | Rotation(-10,10) (best of the finished trials only: 1 of 3 trials failed " \
           "(Rotation(-45,45))) | 20.0 |" in text
    assert "| backbones | val:R@1 | rotation | backbone=vgg16, fc_output_dim=128 | 40.0 |" in text


def test_time_per_trial_and_totals(sweep_dir: Path) -> None:
    write_report(sweep_dir)
    rows = _csv(sweep_dir / "report" / "timing.csv")
    assert len(rows) == 7 and rows[0]["train_seconds"] == "60.0" and rows[0]["images_per_s"] == "110.0"
    assert rows[2]["status"] == "failed" and rows[2]["train_seconds"] == ""
    total = (sweep_dir / "report" / "timing.md").read_text().splitlines()[-1]
    assert total == "| **total** |  |  |  | 0:06:00 |  | 0:00:30 | 0:00:24 |"  # 6 trials x 60 s, 5 s, 4 s


def test_the_report_command(sweep_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(sweep_dir)]) == 0
    assert "report.md" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="not a sweep folder"):
        write_report(tmp_path)


SEEDED = """\
name: seeded
dataset: data/city
test_sets: {sf_xs: test, tokyo_xs: ../tokyo_xs/test}
seeds: [0, 1, 2]
stages:
  - name: rotation
    epochs: 1
    trials:
      - {label: "Rotation(-10,10)", augment.rotation_degrees: 10}
      - {label: "Rotation(-15,15)", augment.rotation_degrees: 15}
    paper:
      "Rotation(-10,10)": {sf_xs: {R@1: 19.1, R@5: 32.1}}
"""
# sf_xs R@1 of each seed (tokyo_xs: 10 more, val: 5 less); Rotation(-15,15) has the higher mean
SEEDED_R1 = {"rotation-10-10": (20.0, 22.0, 24.0), "rotation-15-15": (25.0, 25.0, 25.0)}


@pytest.fixture(scope="module")
def seeded_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once: the tests that change its trial folders work on a copy."""
    tmp_path = tmp_path_factory.mktemp("seeded")
    spec_file = tmp_path / "seeded.yaml"
    spec_file.write_text(SEEDED)
    spec = load_spec(spec_file)
    sweep_dir = tmp_path / "sweep"
    (stage,) = spec.stages
    for trial in stage.trials:
        for seed, r1 in zip(spec.seeds, SEEDED_R1[trial.slug], strict=True):
            _fake_trial(sweep_dir / stage.name / trial.slug / f"seed-{seed}", spec.trial_config(stage, trial, {}, seed),
                        (r1, r1 + 10, r1 - 5), {**stage.overrides, **trial.settings})
    shutil.copy(spec_file, sweep_dir / "spec.yaml")
    write_state(sweep_dir, state_of(spec, plan_sweep(spec, sweep_dir), None))
    return sweep_dir


def test_seeds_report_mean_and_std_per_trial_and_the_best_mean_wins(seeded_dir: Path) -> None:
    write_report(seeded_dir)
    rows = {row["setting"]: row for row in _csv(seeded_dir / "report" / "rotation.csv")}
    ten, fifteen = rows["Rotation(-10,10)"], rows["Rotation(-15,15)"]
    assert (ten["sf_xs R@1"], ten["sf_xs R@1 std"], ten["paper sf_xs R@1"], ten["winner"]) == ("22.0", "2.0", "19.1",
                                                                                            "0")
    assert (fifteen["sf_xs R@1"], fifteen["sf_xs R@1 std"], fifteen["tokyo_xs R@5"], fifteen["winner"]) == (
        "25.0", "0.0", "45.0", "1")
    table = (seeded_dir / "report" / "rotation.md").read_text()
    assert "| Rotation(-10,10) | 22.0 ± 2.0 (19.1) | 32.0 ± 2.0 (32.1) | 32.0 ± 2.0 | 42.0 ± 2.0 |  |" in table
    assert "| **Rotation(-15,15)** | **25.0 ± 0.0** | **35.0 ± 0.0** | **35.0 ± 0.0** | **45.0 ± 0.0** | ★ |" in table
    assert "Mean ± standard deviation over seeds 0, 1, 2." in table
    report = (seeded_dir / "report.md").read_text()
    assert "Each trial ran once per seed (0, 1, 2, in `seed-N/`)" in report
    timing = _csv(seeded_dir / "report" / "timing.csv")
    assert [(row["setting"], row["train_seconds"]) for row in timing] == [("Rotation(-10,10)", "180.0"),
                                                                          ("Rotation(-15,15)", "180.0")]


def test_a_trial_with_a_seed_left_runs_it_and_one_with_a_failed_seed_cannot_win(seeded_dir: Path,
                                                                                 tmp_path: Path) -> None:
    seeded_dir = shutil.copytree(seeded_dir, tmp_path / "sweep")
    spec = load_spec(seeded_dir / "spec.yaml")
    last = seeded_dir / "rotation" / "rotation-15-15" / "seed-2"
    (last / "result.json").unlink()
    (stage,) = plan_sweep(spec, seeded_dir).stages
    assert [t.status for t in stage.trials] == ["done", "partial"] and not stage.decided
    assert [(u.folder, u.config.train.seed) for t in stage.trials for u in t.units() if u.runnable] == [(last, 2)]
    (last / "error.txt").write_text("RuntimeError: out of memory\n")
    (stage,) = plan_sweep(spec, seeded_dir).stages
    assert [t.status for t in stage.trials] == ["done", "failed"] and stage.trials[1].error == (
        "seed 2: RuntimeError: out of memory")
    assert stage.winner is stage.trials[0] and stage.winner.metric == 22.0


def test_a_seeded_sweep_state_lists_each_seeds_run_and_gives_its_winner_as_a_start(seeded_dir: Path) -> None:
    (stage,) = read_state(seeded_dir)["stages"]
    assert stage["winner"] == "rotation-15-15" and read_state(seeded_dir)["seeds"] == [0, 1, 2]
    assert [(run["seed"], run["folder"], run["metric"]) for run in stage["trials"][1]["runs"]] == [
        (seed, f"rotation/rotation-15-15/seed-{seed}", 25.0) for seed in (0, 1, 2)]
    start = find_start_point(seeded_dir)
    assert (start.stage, start.label, start.options) == ("rotation", "Rotation(-15,15)",
                                                         {"train.epochs": 1, "augment.rotation_degrees": 15.0})


def test_the_dry_run_names_the_seeds_and_counts_what_each_seed_has_left(seeded_dir: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    seeded_dir = shutil.copytree(seeded_dir, tmp_path / "sweep")
    spec = load_spec(seeded_dir / "spec.yaml")
    for seed in (1, 2):
        (seeded_dir / "rotation" / "rotation-15-15" / f"seed-{seed}" / "result.json").unlink()
    print_plan(spec, plan_sweep(spec, seeded_dir), None)
    lines = capsys.readouterr().out.splitlines()
    assert "seeds: 0, 1, 2 (every trial runs once per seed, in <trial>/seed-N/)" in lines
    assert "  [partial] Rotation(-15,15) -> rotation/rotation-15-15" in lines
    assert lines[-1] == "left to train: about 20,000 iterations"  # two seeds of 1 epoch of the default 10,000
