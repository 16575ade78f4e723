"""The files of a run folder: options, log, per-epoch metrics (CSV, TensorBoard) and the curves plot."""

from __future__ import annotations

import csv
import io
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from cosplace_xs.config import RunConfig

CONFIG = "config.yaml"
LOG = "train.log"
METRICS = "metrics.csv"
CURVES = "curves.png"
TENSORBOARD = "tensorboard"
BAD_IMAGES = "bad_images.txt"


def new_run_dir(base: Path, config: RunConfig) -> Path:
    """A fresh folder `base/<date-time>-<backbone>-<dim>` (suffixed if it exists)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    stem = f"{stamp}-{config.model.backbone}-{config.model.fc_output_dim}"
    candidate = base / stem
    suffix = 1
    while candidate.exists():
        candidate = base / f"{stem}-{suffix}"
        suffix += 1
    candidate.mkdir(parents=True)
    return candidate


def write_text_atomic(path: Path, text: str) -> None:
    """Replace a small text file in one step, so a crash never leaves half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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


class RunLogFile:
    """Copies the toolkit's log records into the run folder's `train.log` while a run lasts."""

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        if enabled:
            run_dir.mkdir(parents=True, exist_ok=True)  # a run started from Python gets its folder too
        self.handler = logging.FileHandler(run_dir / LOG) if enabled else logging.NullHandler()
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.logger = logging.getLogger("cosplace_xs")

    def __enter__(self) -> RunLogFile:
        self.logger.addHandler(self.handler)
        if self.logger.level == logging.NOTSET or self.logger.level > logging.INFO:
            self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.handler.close()
