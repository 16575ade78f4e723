"""Recall@N against the descriptor size K that `cosplace-xs pca` reduced a model to."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from cosplace_xs.atomic_files import replacing


def plot_recall_against_dim(rows: list[dict[str, float]], full_dim: int, path: Path, title: str) -> Path:
    """One line per R@N column of `rows` (each with a `dim`), K on a log axis; the unreduced model's size
    `full_dim` marked. Written atomically as a PNG."""
    rows = sorted(rows, key=lambda row: row["dim"])
    dims = [row["dim"] for row in rows]
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    for column in (key for key in rows[0] if key.startswith("R@")):
        axes.plot(dims, [row[column] for row in rows], marker="o", label=column)
    axes.axvline(full_dim, color="grey", linestyle=":", label=f"no PCA (D={full_dim})")
    axes.set_xscale("log", base=2)
    axes.set_xticks(dims, [str(dim) for dim in dims])
    axes.set_xlabel("descriptor size K")
    axes.set_ylabel("Recall (%)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with replacing(path, "wb") as file:
        figure.savefig(file, format="png")
    plt.close(figure)
    return path
