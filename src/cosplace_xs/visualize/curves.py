"""Training curves of a run (or several runs overlaid): loss, validation recalls, throughput."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from cosplace_xs.atomic_files import replacing

PANELS = (("loss", "training loss"), ("val_R@1", "val Recall@1 (%)"), ("val_R@5", "val Recall@5 (%)"),
          ("images_per_s", "training images/s"))


def plot_curves(histories: dict[str, list[dict[str, Any]]], path: Path, title: str = "") -> Path:
    """One panel per metric, one line per run, epochs on the x axis; saved as a PNG."""
    figure, axes = plt.subplots(1, len(PANELS), figsize=(4 * len(PANELS), 3.4))
    for axis, (key, label) in zip(axes, PANELS, strict=True):
        for name, history in histories.items():
            points = [(row["epoch"], row[key]) for row in history if row.get(key) not in (None, "")]
            if points:
                xs, ys = zip(*points, strict=True)
                axis.plot(xs, ys, marker="o", label=name)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no tick at 1.5
        axis.set_title(label)
        axis.grid(alpha=0.3)
    if len(histories) > 1:
        axes[0].legend(fontsize=7)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    with replacing(Path(path), "wb") as file:  # a run stopped while drawing keeps its previous curves
        figure.savefig(file, format="png", dpi=100)
    plt.close(figure)
    return path
