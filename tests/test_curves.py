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


def test_a_short_run_shows_the_loss_of_every_step_read_from_tensorboard(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(tmp_path / "tb") as writer:  # 2 epochs of 3 steps; step 5 written twice (a resume)
        for step, loss in [(1, 6.0), (2, 5.0), (3, 4.0), (4, 3.5), (5, 9.9), (5, 3.0), (6, 2.5)]:
            writer.add_scalar("train/loss", loss, step)
    xs, losses = curves.read_step_losses(tmp_path / "tb", iterations_per_epoch=3)
    assert xs == pytest.approx([1 / 3, 2 / 3, 1.0, 4 / 3, 5 / 3, 2.0])
    assert losses == pytest.approx([6.0, 5.0, 4.0, 3.5, 3.0, 2.5])
    assert curves.read_step_losses(tmp_path / "empty", 3) == ([], [])

    history = [{"epoch": 1, "loss": 5.0}, {"epoch": 2, "loss": 3.0}]
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    curves.plot_curves({"run": history}, tmp_path / "curves.png", step_losses={"run": (xs, losses)})
    loss_panel = figures[0].axes[0]
    assert [list(line.get_ydata()) for line in loss_panel.lines] == [losses, [5.0, 3.0]]
