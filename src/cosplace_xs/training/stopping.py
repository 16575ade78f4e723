"""Stopping training on SIGINT (Ctrl-C) or SIGTERM at a safe point, never in the middle of a checkpoint write."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

from cosplace_xs import checkpoints as ckpt
from cosplace_xs.training.distributed import DistributedContext

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT or SIGTERM at a safe point, after writing last.pt; `--resume` continues it
    exactly. The shell's exit status for the signal is `128 + signum` (130 for Ctrl-C, 143 for SIGTERM)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


class StopRequest:
    """SIGINT and SIGTERM noted rather than raised, so training stops after the step it is in, with last.pt
    written. A second signal stops at once, without saving (last.pt stays the previous complete one), except
    while a checkpoint is being written: that write is never cut short."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.writing_checkpoint = False

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is None:
            self.signum = signum
            log.warning("%s received: stopping after the current step and writing %s (send it again to stop at "
                        "once, without saving)", signal.Signals(signum).name, ckpt.LAST)
        elif not self.writing_checkpoint:
            raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Handle the stop signals for the duration (signal handlers can only be set in the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    @contextmanager
    def writing(self) -> Iterator[None]:
        self.writing_checkpoint = True
        try:
            yield
        finally:
            self.writing_checkpoint = False

    def agreed(self, context: DistributedContext, device: torch.device) -> int | None:
        """The signal to stop on, the same on every process: torchrun forwards a signal to each of them, but
        they may take it at different steps, so they agree on the highest one at each safe point."""
        if not context.enabled:
            return self.signum
        flag = torch.tensor([self.signum or 0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item()) or None
