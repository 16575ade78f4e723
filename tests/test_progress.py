"""Progress off a terminal: periodic plain log lines instead of carriage-return frames."""

from __future__ import annotations

import logging

import pytest

from cosplace_xs import progress


def test_off_a_terminal_progress_is_a_few_plain_lines(monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture, capsys) -> None:
    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    clock = iter(float(t) for t in range(0, 1000, 3))  # every update advances 3 s; lines every 10 s
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="cosplace_xs.progress"), \
            progress.progress_bar(20, "train epoch 1", "batches") as bar:
        for _ in range(20):
            bar.update(1)
            bar.set_postfix(loss="1.000")
    lines = [record.getMessage() for record in caplog.records]
    assert 5 <= len(lines) <= 8, lines  # 60 s of updates: one line per 10 s, and the last
    assert lines[-1].startswith("train epoch 1: 20/20 batches (100%, ") and lines[-1].endswith("loss=1.000")
    assert "\r" not in capsys.readouterr().err


def test_disabled_progress_says_nothing(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    with caplog.at_level(logging.INFO, logger="cosplace_xs.progress"):
        assert list(progress.tracked(range(3), 3, "scan", "img", enabled=False)) == [0, 1, 2]
    assert caplog.records == []


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0 s"), (89.4, "89 s"), (90, "2 min"), (5399, "90 min"),
                                                (5400, "1 h 30 min"), (7500, "2 h 05 min")])
def test_duration_text(seconds: float, text: str) -> None:
    assert progress.duration_text(seconds) == text


def test_time_left_extrapolates_the_mean_pace_of_the_units_done() -> None:
    assert progress.time_left(2, 10, 90.0, "epoch") == "2 of 10 epochs done: about 6 min left (45 s per epoch)"
