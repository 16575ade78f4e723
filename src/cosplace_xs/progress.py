"""Progress of long work: a tqdm bar on a terminal, a plain line every few seconds anywhere else.

Off a terminal (CI, nohup, a sweep's log file) tqdm writes a carriage-return frame per update, hundreds per
epoch; there a line such as `train epoch 3: 120/500 batches (24%, 41.2 batches/s, 9 s left) loss=3.120` is
logged instead, at most once per PLAIN_INTERVAL_S and once at the end.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm import tqdm

PLAIN_INTERVAL_S = 10.0
log = logging.getLogger("cosplace_xs.progress")


class PlainProgress:
    """The subset of tqdm's interface the toolkit uses, reported as periodic log lines."""

    def __init__(self, total: int, desc: str, unit: str, initial: int = 0,
                 interval_s: float = PLAIN_INTERVAL_S) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.interval_s = interval_s
        self.started = self.last = time.monotonic()
        self.start_n = initial
        self.postfix = ""
        self.closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= self.interval_s:
            self._report()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = " ".join(f"{key}={value}" for key, value in values.items())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._report()

    def _report(self) -> None:
        self.last = time.monotonic()
        elapsed = max(self.last - self.started, 1e-9)
        rate = (self.n - self.start_n) / elapsed
        share = f" ({100 * self.n / self.total:.0f}%" if self.total else " ("
        left = f", {(self.total - self.n) / rate:.0f} s left" if rate > 0 and self.total else ""
        log.info("%s: %d/%s %s%s, %.1f %s/s%s) %s", self.desc, self.n, self.total or "?", self.unit, share, rate,
                 self.unit, left, self.postfix)

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def on_terminal() -> bool:
    """True when the progress would be seen on a terminal (stderr is one)."""
    return sys.stderr.isatty()


def progress_bar(total: int, desc: str, unit: str, enabled: bool = True, initial: int = 0,
                 leave: bool = True) -> tqdm | PlainProgress:
    """A tqdm bar on a terminal, periodic log lines elsewhere, nothing at all when not `enabled`."""
    if enabled and not on_terminal():
        return PlainProgress(total, desc, unit, initial)
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=leave, disable=not enabled,
                dynamic_ncols=True)


def tracked(items: Iterable[Any], total: int, desc: str, unit: str, enabled: bool = True) -> Iterator[Any]:
    """`items`, advancing a progress bar (see `progress_bar`) for each."""
    with progress_bar(total, desc, unit, enabled) as bar:
        for item in items:
            yield item
            bar.update(1)


def duration_text(seconds: float) -> str:
    """`45 s`, `12 min`, `2 h 05 min`: a duration as a person reads it."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def time_left(done: int, total: int, seconds: float, unit: str) -> str:
    """`3 of 10 epochs done: about 5 min left (41 s per epoch)`: the `total - done` units still to run, at the
    mean pace of the `done` ones, which took `seconds` in all."""
    pace = seconds / max(done, 1)
    return (f"{done} of {total} {unit}s done: about {duration_text(pace * (total - done))} left "
            f"({duration_text(pace)} per {unit})")
