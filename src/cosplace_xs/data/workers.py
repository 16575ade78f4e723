"""Start-up of the data-loading worker processes of training and of inference."""

from __future__ import annotations

import os
import signal


def start_worker(yielding: bool, worker_id: int) -> None:
    """Start-up of a data-loading worker: Ctrl-C at a terminal reaches every process of its group, and the main
    process stops at its next safe point, so a worker must not die of it first (the main process would then
    fail with "DataLoader worker exited unexpectedly"). A `yielding` worker also takes the lowest scheduling
    priority."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if yielding:
        # the model's threads hold every core; a worker that preempts one stalls the others at its next barrier,
        # while a worker at the lowest priority decodes in the cores' idle moments, ahead of time (prefetch)
        os.nice(19)
