"""Training curves of a run (or several runs overlaid): loss, validation recalls, throughput."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cosplace_xs.atomic_files import replacing

FEW_EPOCHS = 5  # up to this many epochs, the loss panel also shows the loss of every step
PANELS = (("loss", "training loss"), ("val_R@1", "val Recall@1 (%)"), ("val_R@5", "val Recall@5 (%)"),
          ("images_per_s", "training images/s"))


def read_step_losses(tensorboard_dir: Path, iterations_per_epoch: int) -> tuple[list[float], list[float]]:
    """(x in epochs, loss) of every training step a run's TensorBoard folder holds; empty lists when none.

    A step's loss is logged at the count of steps done, s, and ends at epoch s / iterations_per_epoch, so the last
    step of epoch e sits at e, where that epoch's mean is drawn."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not tensorboard_dir.is_dir():
        return [], []
    events = EventAccumulator(str(tensorboard_dir), size_guidance={"scalars": 0})  # 0: keep every step
    events.Reload()
    if "train/loss" not in events.Tags().get("scalars", []):
        return [], []
    by_step = {event.step: event.value for event in events.Scalars("train/loss")}  # a resumed step: the last
    steps = sorted(by_step)
    return [step / iterations_per_epoch for step in steps], [by_step[step] for step in steps]


def plot_curves(histories: dict[str, list[dict[str, Any]]], path: Path, title: str = "",
                step_losses: dict[str, tuple[list[float], list[float]]] | None = None) -> Path:
    """One panel per metric, one line per run, epochs on the x axis; saved as a PNG. For a run of at most
    FEW_EPOCHS epochs with `step_losses` (see `read_step_losses`), the loss of every step is drawn too."""
    # imported here, not with the module: training imports this module and draws only at its end, and
    # matplotlib's import took a tenth of the time to a run's first batch
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(1, len(PANELS), figsize=(4 * len(PANELS), 3.4))
    for axis, (key, label) in zip(axes, PANELS, strict=True):
        for name, history in histories.items():
            steps = (step_losses or {}).get(name)
            if key == "loss" and steps and steps[0] and len(history) <= FEW_EPOCHS:
                axis.plot(*steps, lw=0.8, alpha=0.6, label=f"{name}: every step")
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
