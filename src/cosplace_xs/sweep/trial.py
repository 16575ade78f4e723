"""One trial of a sweep: a normal training run in its own folder, then Recall@N on the spec's test sets.

The folder is the trial's record: `result.json` (written last, atomically) means done, `error.txt` failed,
`config.yaml` with `last.pt` an interrupted run that `train(..., resume=True)` continues.
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

from cosplace_xs import checkpoints as ckpt
from cosplace_xs.atomic_files import write_text_atomic
from cosplace_xs.config import RunConfig
from cosplace_xs.data.test_set import TestSet
from cosplace_xs.errors import ConfigError
from cosplace_xs.evaluation.evaluate import evaluate_model
from cosplace_xs.evaluation.inference import Inference
from cosplace_xs.evaluation.model_loading import load_trained_model
from cosplace_xs.sweep.options import DATASET_OPTION
from cosplace_xs.sweep.spec import VAL, Metric
from cosplace_xs.training import run_files
from cosplace_xs.training.loop import train

log = logging.getLogger(__name__)

RESULT = "result.json"
ERROR = "error.txt"
DONE, FAILED, PARTIAL, PENDING, BLOCKED = "done", "failed", "partial", "pending", "blocked"


def folder_status(folder: Path) -> str:
    """done, failed, partial (a run to resume) or pending, from the files in the trial folder."""
    if (folder / RESULT).is_file():
        return DONE
    if (folder / ERROR).is_file():
        return FAILED
    if (folder / run_files.CONFIG).is_file() and (folder / ckpt.LAST).is_file():
        return PARTIAL
    return PENDING


def read_result(folder: Path) -> dict[str, Any] | None:
    path = folder / RESULT
    return json.loads(path.read_text()) if path.is_file() else None


def read_error(folder: Path) -> str | None:
    """The first line of `error.txt` (the exception), if the trial failed."""
    path = folder / ERROR
    return path.read_text().splitlines()[0] if path.is_file() else None


def metric_value(result: dict[str, Any] | None, metric: Metric) -> float | None:
    """The stage metric of a finished trial (None when it was not measured, e.g. no validation set)."""
    if result is None:
        return None
    recalls = result.get("val") if metric.source == VAL else result["test"].get(metric.source)
    return None if recalls is None else recalls.get(f"R@{metric.n}")


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    return {f"{group}.{key}": value for group, values in config.items() for key, value in values.items()}


def config_mismatch(folder: Path, config: RunConfig) -> str | None:
    """How the run already in `folder` differs from `config` (the dataset may have moved), or None."""
    path = folder / run_files.CONFIG
    if not path.is_file():
        return None
    old, new = _flat(RunConfig.load(path, complete=True).to_dict()), _flat(config.to_dict())
    # a run records the precision `auto` chose (resume trains in it)
    same = {DATASET_OPTION, *(["train.precision"] if config.train.precision == "auto" else [])}
    changed = [f"{key}: {old[key]!r} there, {new[key]!r} in the spec" for key in new
               if key not in same and old.get(key) != new[key]]
    if not changed:
        return None
    return (f"{folder} holds a run with other options ({'; '.join(changed[:3])}{'; ...' if len(changed) > 3 else ''})."
            " Delete that folder to run this trial again, or give the sweep another --out folder")


def record_failure(folder: Path, error: BaseException) -> str:
    """Write `error.txt` (the exception, then its traceback); returns the one-line summary."""
    summary = f"{type(error).__name__}: {error}".splitlines()[0]
    folder.mkdir(parents=True, exist_ok=True)
    trace = "".join(traceback.format_exception(error))
    write_text_atomic(folder / ERROR, f"{summary}\n\n{trace}")
    return summary


def _best_val(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Validation recalls of the epoch with the best val R@1 (the first one, as best.pt keeps)."""
    rows = [row for row in history if row.get("val_R@1") is not None]
    if not rows:
        return None
    best = max(rows, key=lambda row: row["val_R@1"])  # max keeps the first of equal values
    return {"epoch": best["epoch"], **{key.removeprefix("val_"): value for key, value in best.items()
                                       if key.startswith("val_R@")}}


def _timing(history: list[dict[str, Any]], config: RunConfig) -> dict[str, float | None]:
    """The training seconds each epoch recorded (steps only), the images/s over them, and the validation seconds."""
    seconds = sum(row.get("train_seconds", 0.0) for row in history)
    images = config.train.batch_size * config.train.iterations_per_epoch * len(history)
    return {"train_seconds": seconds, "images_per_s": images / seconds if seconds else None,
            "val_seconds": sum(row.get("val_seconds") or 0.0 for row in history)}


def evaluate_trial(folder: Path, config: RunConfig, test_sets: dict[str, TestSet],
                   progress: bool) -> dict[str, dict[str, Any]]:
    """Recall@N of the trial's best checkpoint (last when it had no validation) on every test set."""
    inference = Inference.of_run(config, config.train.device, progress)
    model, _ = load_trained_model(folder, inference.device, config.train.compile)
    results = {}
    for name, test_set in test_sets.items():
        result = evaluate_model(model, test_set, config.eval, inference)
        results[name] = {**{f"R@{n}": value for n, value in result.recalls.items()},
                         "num_database": result.num_database, "num_queries": result.num_queries,
                         "queries_without_positives": result.queries_without_positives, "seconds": result.seconds}
        log.info("%s on %s: %s", folder.name, name,
                 ", ".join(f"R@{n} {value:.1f}" for n, value in result.recalls.items()))
    return results


def run_trial(folder: Path, config: RunConfig, test_sets: dict[str, TestSet], record: dict[str, Any],
              progress: bool = True) -> dict[str, Any]:
    """Train (resuming an interrupted run), evaluate, and write `result.json` holding `record` and the figures."""
    mismatch = config_mismatch(folder, config)
    if mismatch:
        raise ConfigError(mismatch)
    resume = folder_status(folder) == PARTIAL
    folder.mkdir(parents=True, exist_ok=True)
    log.info("%s %s", "resuming" if resume else "training", folder)
    trained = train(config, folder, resume=resume, progress=progress)
    result = {
        **record,
        "checkpoint": ckpt.resolve_checkpoint(folder).name,
        "epochs": len(trained.history),
        "val": _best_val(trained.history),
        "test": evaluate_trial(folder, config, test_sets, progress),
        **_timing(trained.history, config),
        "config": config.to_dict(),
        "finished": datetime.now().isoformat(timespec="seconds"),
    }
    result["test_seconds"] = sum(figures["seconds"] for figures in result["test"].values())
    write_text_atomic(folder / RESULT, json.dumps(result, indent=2) + "\n")
    return result
