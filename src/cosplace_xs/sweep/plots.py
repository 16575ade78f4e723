"""The report's figures: R@1 against descriptor size per backbone (the paper's Fig. 3), training curves."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from cosplace_xs.sweep.runner import StagePlan
from cosplace_xs.sweep.spec import BACKBONE
from cosplace_xs.sweep.trial import DONE
from cosplace_xs.training import run_files
from cosplace_xs.visualize.curves import plot_curves

DESCRIPTOR_SIZE = "model.fc_output_dim"


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """A run's metrics.csv as rows of numbers (empty cells dropped)."""
    if not path.is_file():
        return []
    with path.open(newline="") as file:
        return [{key: float(value) for key, value in row.items() if value not in (None, "")}
                for row in csv.DictReader(file)]


def plot_stage_curves(stage: StagePlan, path: Path) -> Path | None:
    """The training curves of the stage's trials overlaid, or None when none has finished an epoch."""
    # with `seeds:`, the curves of the first seed's run
    histories = {trial.spec.label: read_metrics(trial.units()[0].folder / run_files.METRICS) for trial in stage.trials}
    histories = {label: rows for label, rows in histories.items() if rows}
    if not histories:
        return None
    return plot_curves(histories, path, title=f"stage {stage.stage.name}")


def _points(stage: StagePlan, test_set: str) -> dict[str, list[tuple[int, float]]]:
    """R@1 on `test_set` by descriptor size, per backbone, from each finished trial's options."""
    lines: dict[str, list[tuple[int, float]]] = {}
    for trial in stage.trials:
        if trial.status != DONE or trial.result is None or test_set not in trial.result["test"]:
            continue
        model = trial.result["config"]["model"]
        lines.setdefault(model["backbone"], []).append((model["fc_output_dim"], trial.result["test"][test_set]["R@1"]))
    return {backbone: sorted(points) for backbone, points in lines.items()}


def plot_descriptor_sizes(stage: StagePlan, path: Path) -> Path | None:
    """Fig. 3: R@1 against descriptor size D, one line per backbone, one panel per test set; None when the
    stage varies neither the backbone nor D, or has no finished trial."""
    if not {BACKBONE, DESCRIPTOR_SIZE} & set(stage.stage.varied):
        return None
    test_sets = list(dict.fromkeys(name for t in stage.trials if t.result for name in t.result["test"]))
    panels = [(name, _points(stage, name)) for name in test_sets]
    panels = [(name, lines) for name, lines in panels if lines]
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for axis, (name, lines) in zip(axes[0], panels, strict=True):
        sizes = sorted({size for points in lines.values() for size, _ in points})
        for backbone, points in lines.items():
            xs, ys = zip(*points, strict=True)
            axis.plot(xs, ys, marker="o", label=backbone)
        axis.set_xscale("log", base=2)
        axis.set_xticks(sizes, [str(size) for size in sizes])
        axis.set_xlabel("descriptor size D (fc_output_dim)")
        axis.set_ylabel("Recall@1 (%)")
        axis.set_title(name)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"stage {stage.stage.name}: R@1 against descriptor size")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
