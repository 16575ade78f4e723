"""The files of a run folder: options, log, per-epoch metrics (CSV, TensorBoard), the curves plot, and the lock
that gives the folder to one training process at a time."""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from cosplace_xs.atomic_files import write_text_atomic
from cosplace_xs.config import RunConfig
from cosplace_xs.errors import RunFolderError

CONFIG = "config.yaml"
LOG = "train.log"
METRICS = "metrics.csv"
CURVES = "curves.png"
TENSORBOARD = "tensorboard"
BAD_IMAGES = "bad_images.txt"
HISTORY = "history.yaml"
LOCK = ".lock"


def new_run_dir(base: Path, config: RunConfig) -> Path:
    """A fresh folder `base/<date-time>-<backbone>-<dim>` (suffixed if it exists)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    stem = f"{stamp}-{config.model.backbone}-{config.model.fc_output_dim}"
    require_writable(base, "--runs-root")
    base.mkdir(parents=True, exist_ok=True)
    for suffix in range(10_000):
        candidate = base / (stem if suffix == 0 else f"{stem}-{suffix}")
        try:
            candidate.mkdir()  # exclusive: two commands started in the same second get different folders
            return candidate
        except FileExistsError:
            continue
    raise RunFolderError(f"{base}: no free run folder name for {stem}; pass --run-dir")


def require_writable(folder: Path, what: str) -> None:
    """Refuse, before any work, a folder (or, if it does not exist yet, the folder that would hold it) that this
    process cannot write into."""
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise RunFolderError(f"{what} {folder}: {existing} is not a folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunFolderError(f"{what} {folder}: {existing} is not writable; fix its permissions or choose another "
                             "folder")


def save_config(run_dir: Path, config: RunConfig) -> None:
    """Write the run's `config.yaml` atomically: a kill during a resume's rewrite leaves the previous one."""
    write_text_atomic(run_dir / CONFIG, yaml.safe_dump(config.to_dict(), sort_keys=False))


def append_history(run_dir: Path, entry: dict[str, Any]) -> None:
    """Add an entry (e.g. the options a resume changed, and where) to the run's `history.yaml`."""
    path = run_dir / HISTORY
    entries = (yaml.safe_load(path.read_text(encoding="utf-8")) or []) if path.is_file() else []
    write_text_atomic(path, yaml.safe_dump([*entries, entry], sort_keys=False))


def write_metrics_csv(path: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite the per-epoch metrics table from the history kept in the checkpoint."""
    if not history:
        return
    columns = list(dict.fromkeys(key for row in history for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    write_text_atomic(path, buffer.getvalue())


class RunLock:
    """The run folder's claim: an exclusive `fcntl.flock` on `.lock`, held while the run lasts and released by the
    kernel whatever ends the process (kill -9 included), so a second process never writes into a running run."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.fd: int | None = None

    def acquire(self) -> None:
        path = self.run_dir / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise RunFolderError(f"{self.run_dir}: cannot create its lock file {LOCK} ({error.strerror}); fix the "
                                 "folder's permissions or choose another folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if error.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise RunFolderError(f"{self.run_dir}: in use by another training process (PID {holder}); wait for it "
                                 "to end, or choose another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor releases the flock
            self.fd = None


def discard_unused_run_dir(run_dir: Path) -> bool:
    """Remove a run folder that holds no more than a failed start leaves (`train.log`, the lock), so a refused
    command leaves nothing behind; True if removed. Only call it for a folder the same command created."""
    if not run_dir.is_dir() or any(entry.name not in (LOG, LOCK) for entry in run_dir.iterdir()):
        return False
    lock = RunLock(run_dir)
    try:
        lock.acquire()  # another process that took the folder meanwhile keeps it
    except RunFolderError:
        return False
    try:
        for name in (LOG, LOCK):
            (run_dir / name).unlink(missing_ok=True)
        run_dir.rmdir()
    except OSError:
        return False
    finally:
        lock.release()
    return True


class RunLogFile:
    """While a run lasts: holds the run folder's lock and copies the toolkit's log records into `train.log`,
    ending with the error that stopped the run, if one did. Disabled, it does neither (torchrun ranks > 0)."""

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        if enabled:
            run_dir.mkdir(parents=True, exist_ok=True)  # a run started from Python gets its folder too
        # delay: nothing is written into a folder before its lock is held
        self.handler = logging.FileHandler(run_dir / LOG, delay=True) if enabled else logging.NullHandler()
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.logger = logging.getLogger("cosplace_xs")
        self.lock = RunLock(run_dir) if enabled else None

    def __enter__(self) -> RunLogFile:
        if self.lock is not None:
            self.lock.acquire()
        self.logger.addHandler(self.handler)
        if self.logger.level == logging.NOTSET or self.logger.level > logging.INFO:
            self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: object) -> None:
        if error is not None:  # the terminal shows it once; train.log keeps it beside the run's own records
            message = "interrupted" if isinstance(error, KeyboardInterrupt) else f"{type(error).__name__}: {error}"
            self.handler.handle(self.logger.makeRecord(self.logger.name, logging.ERROR, __file__, 0,
                                                       "run stopped: %s", (message,), None))
        self.logger.removeHandler(self.handler)
        self.handler.close()
        if self.lock is not None:
            self.lock.release()
