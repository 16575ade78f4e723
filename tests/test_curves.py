"""The training curves: one panel per metric, whole epochs on the x axis."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from cosplace_xs.visualize import curves


def test_epochs_are_ticked_as_whole_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    history = [{"epoch": 1, "loss": 3.0, "val_R@1": 10.0, "val_R@5": 20.0, "images_per_s": 40.0},
               {"epoch": 2, "loss": 2.0, "val_R@1": 15.0, "val_R@5": 30.0, "images_per_s": 41.0}]
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to read its axes
    path = curves.plot_curves({"run": history}, tmp_path / "curves.png")
    assert path.is_file() and path.stat().st_size > 0
    for axis in figures[0].axes:
        ticks = [tick for tick in axis.get_xticks() if 1 <= tick <= 2]
        assert ticks == [1.0, 2.0], axis.get_title()
        assert list(axis.lines[0].get_xdata()) == [1, 2]
