"""The sweep report: per stage a Markdown and a CSV table in the paper's layout, Fig. 3, training curves,
time per trial, and `report.md` linking them all."""

from __future__ import annotations

import logging
from pathlib import Path

from cosplace_xs.atomic_files import write_text_atomic
from cosplace_xs.errors import ConfigError
from cosplace_xs.sweep.plots import plot_descriptor_sizes, plot_stage_curves
from cosplace_xs.sweep.runner import SweepPlan, plan_sweep
from cosplace_xs.sweep.spec import SweepSpec, load_spec
from cosplace_xs.sweep.state import SPEC_COPY, read_state, stored_start
from cosplace_xs.sweep.tables import Table, backbone_table, markdown_table, options_text, stage_table

log = logging.getLogger(__name__)

REPORT = "report.md"
REPORT_DIR = "report"
TIMING = "timing"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def timing_table(plan: SweepPlan) -> Table:
    """Time and throughput of every trial: training (from metrics.csv's images/s), validation, test."""
    columns = ["stage", "setting", "status", "epochs", "train_seconds", "images_per_s", "val_seconds",
               "test_seconds"]
    rows, cells = [], []
    for trial in plan.trials():
        result = trial.result or {}
        row = {"stage": trial.stage, "setting": trial.spec.label, "status": trial.status,
               **{key: result.get(key) for key in columns[3:]}}
        rows.append(row)
        speed = row["images_per_s"]
        cells.append([trial.stage, trial.spec.label, trial.status, str(row["epochs"] or "—"),
                      _duration(row["train_seconds"]), "—" if speed is None else f"{speed:.1f}",
                      _duration(row["val_seconds"]), _duration(row["test_seconds"])])
    total = [sum(row[key] or 0.0 for row in rows) for key in ("train_seconds", "val_seconds", "test_seconds")]
    cells.append(["**total**", "", "", "", _duration(total[0]), "", _duration(total[1]), _duration(total[2])])
    header = ["Stage", "Setting", "Status", "Epochs", "Train time", "Images/s", "Val time", "Test time"]
    return Table(columns, rows, markdown_table(header, cells, {3, 4, 5, 6, 7}))


def _write_table(table: Table, folder: Path, stem: str) -> tuple[Path, Path]:
    markdown, csv_file = folder / f"{stem}.md", folder / f"{stem}.csv"
    write_text_atomic(markdown, table.markdown)
    write_text_atomic(csv_file, table.csv())
    return markdown, csv_file


def _link(path: Path, sweep_dir: Path) -> str:
    return path.relative_to(sweep_dir).as_posix()


def _header(spec: SweepSpec, plan: SweepPlan, state: dict) -> list[str]:
    counts = ", ".join(f"{n} {status}" for status, n in plan.counts().items())
    lines = [f"# Sweep `{spec.name}`", ""] + ([spec.description, ""] if spec.description else []) + [
             f"Dataset: `{spec.dataset}`; test sets: "
             + ", ".join(f"{name} (`{path}`)" for name, path in spec.test_sets.items()) + ".",
             f"Trials: {counts}. Spec: [{SPEC_COPY}]({SPEC_COPY}); state: `sweep_state.json`.", ""]
    if spec.seeds:
        seeds = ", ".join(map(str, spec.seeds))
        lines += [f"Each trial ran once per seed ({seeds}, in `seed-N/`); its figures are the mean ± sample "
                  "standard deviation over them, and the winner has the best mean.", ""]
    start = state.get("start_from")
    if start:
        lines += [f"Started from the winner of stage `{start['stage']}` of `{start['sweep_dir']}` "
                  f"({start['label']}): {options_text(start['options'])}.", ""]
    rows = [[s.stage.name, str(s.stage.metric), s.stage.inherit or "—",
             s.winner_text(),
             "—" if s.winner is None or s.winner.metric is None else f"{s.winner.metric:.1f}"] for s in plan.stages]
    lines += ["## Winners", "", markdown_table(["Stage", "Metric", "Inherits", "Winner", "Value"], rows, {4})]
    last = next((s for s in reversed(plan.stages) if s.winner), None)
    if last is not None:
        lines += [f"Options of the last winner ({last.stage.name}: {last.winner.spec.label}), on top of the base: "
                  f"{options_text(last.winner.options or {})}.", ""]
    return lines


def write_report(sweep_dir: Path) -> Path:
    """Write the report of the sweep in `sweep_dir` (finished or not); returns the path of `report.md`."""
    sweep_dir = Path(sweep_dir)
    state = read_state(sweep_dir)
    if state is None or not (sweep_dir / SPEC_COPY).is_file():
        raise ConfigError(f"{sweep_dir}: not a sweep folder (no sweep_state.json and {SPEC_COPY}); pass the --out "
                          "folder of `cosplace-xs sweep`")
    spec = load_spec(sweep_dir / SPEC_COPY).with_dataset(state["dataset"])
    plan = plan_sweep(spec, sweep_dir, stored_start(state))
    folder = sweep_dir / REPORT_DIR
    folder.mkdir(exist_ok=True)
    lines = _header(spec, plan, state)
    for stage in plan.stages:
        table = stage_table(stage, list(spec.test_sets))
        markdown, csv_file = _write_table(table, folder, stage.stage.name)
        lines += [f"## Stage `{stage.stage.name}`", ""]
        lines += [stage.stage.description, ""] if stage.stage.description else []
        lines += [f"Winner by {stage.stage.metric} (bold, ★); inherits: {stage.stage.inherit or 'nothing'}; "
                  f"options of every trial: {options_text(stage.stage.overrides)}.", "",
                  table.markdown, f"Table: [{_link(markdown, sweep_dir)}]({_link(markdown, sweep_dir)}), "
                  f"[{_link(csv_file, sweep_dir)}]({_link(csv_file, sweep_dir)})", ""]
        backbones = backbone_table(stage, list(spec.test_sets))
        if backbones is not None:
            markdown, csv_file = _write_table(backbones, folder, f"{stage.stage.name}_backbones")
            lines += ["Best setting of each backbone (the paper's Table 4):", "", backbones.markdown,
                      f"Table: [{_link(csv_file, sweep_dir)}]({_link(csv_file, sweep_dir)})", ""]
        sizes = plot_descriptor_sizes(stage, folder / f"{stage.stage.name}_descriptor_size.png")
        if sizes is not None:
            lines += [f"![R@1 against descriptor size]({_link(sizes, sweep_dir)})", ""]
        curves = plot_stage_curves(stage, folder / f"{stage.stage.name}_curves.png")
        if curves is not None:
            lines += [f"![training curves]({_link(curves, sweep_dir)})", ""]
    timing = timing_table(plan)
    markdown, csv_file = _write_table(timing, folder, TIMING)
    lines += ["## Time per trial", "", timing.markdown, f"Table: [{_link(csv_file, sweep_dir)}]"
              f"({_link(csv_file, sweep_dir)})", ""]
    path = sweep_dir / REPORT
    write_text_atomic(path, "\n".join(lines))
    log.info("report written to %s", path)
    return path
