"""A static PNG map of one geolocated photo, in metres (UTM), drawn with matplotlib: it needs no network.

The database positions trace the streets in grey; the matches are numbered by rank, the prediction is a red
star with its confidence, the true position (when the photo's name carries it) a green dot joined to the
prediction; the axes are metres east and north of the prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from cosplace_xs.atomic_files import replacing

UTM = tuple[float, float]
MARGIN_M = 40.0  # metres shown around the prediction, its matches and the truth


def save_metre_map(path: Path, predicted: UTM, confidence: float, matches: Sequence[UTM],
                   match_labels: Sequence[str], database: np.ndarray, true_position: UTM | None = None,
                   title: str = "") -> Path:
    """Write the map of one prediction; `database` is every database position (n, 2) in UTM metres."""
    assert len(matches) == len(match_labels), "one label per match"
    origin = np.asarray(predicted, dtype=np.float64)
    shown = [origin, *map(np.asarray, matches)] + ([np.asarray(true_position)] if true_position else [])
    low = np.min(shown, axis=0) - MARGIN_M - origin
    high = np.max(shown, axis=0) + MARGIN_M - origin
    figure, axis = plt.subplots(figsize=(6.4, 6.4))
    streets = np.asarray(database, dtype=np.float64) - origin
    near = np.all((streets >= low) & (streets <= high), axis=1)
    axis.scatter(streets[near, 0], streets[near, 1], s=4, c="#bbbbbb", label="database images", zorder=1)
    for (east, north), label in zip(matches, match_labels, strict=True):
        axis.scatter(east - origin[0], north - origin[1], s=60, facecolors="none", edgecolors="#2860c8", zorder=2)
        axis.annotate(label, (east - origin[0], north - origin[1]), fontsize=7, xytext=(5, 4),
                      textcoords="offset points", color="#2860c8")
    axis.scatter(0, 0, marker="*", s=260, c="#d62728", zorder=3, label=f"prediction (confidence {confidence:.2f})")
    if true_position is not None:
        truth = np.asarray(true_position) - origin
        axis.plot([truth[0], 0], [truth[1], 0], "--", c="#444444", lw=1, zorder=2)
        axis.scatter(*truth, s=80, c="#2ca02c", zorder=3,
                     label=f"true position ({float(np.hypot(*truth)):.0f} m off)")
    axis.set_xlim(low[0], high[0])
    axis.set_ylim(low[1], high[1])
    axis.set_aspect("equal")
    axis.set_xlabel("metres east of the prediction")
    axis.set_ylabel("metres north of the prediction")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="upper right")
    if title:
        axis.set_title(title, fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, "wb") as file:
        figure.savefig(file, format="png", dpi=100)
    plt.close(figure)
    return path
