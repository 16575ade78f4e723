"""What `--resume` may change: the one table of options a resumed run accepts with new values, and the checks,
the recording and the applying of those changes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cosplace_xs import checkpoints as ckpt
from cosplace_xs.config import RunConfig, TrainConfig
from cosplace_xs.errors import CheckpointError, DatasetLayoutError, RunFolderError
from cosplace_xs.options import flag_of
from cosplace_xs.training import run_files

log = logging.getLogger(__name__)

DATASET = "train.dataset"
ALLOWED, APPLIED = "allowed", "applied"

# Options a resumed run accepts with a new value, and why. Every other option is refused when it changes: the
# split, model, loss, augmentation, batches, image size, seed, schedule, optimizer kind and the validation
# measure (which decides best.pt) would make the run's second part train, or be judged, otherwise than its first,
# and break the exact continuation a resume promises. Accepted changes are recorded in history.yaml.
RESUME_CHANGES: dict[str, str] = {
    DATASET: ALLOWED,  # the same images at another place (a changed image set fails the split check)
    "train.epochs": ALLOWED,  # extends (never shortens below what is trained) the same schedule
    "train.validate": ALLOWED,
    "train.device": ALLOWED,  # another machine: the same steps, up to floating-point rounding
    "train.compile": ALLOWED,
    "train.precision": ALLOWED,  # the recorded one by default; another machine may lack it (fp16 off CUDA)
    "train.channels_last": ALLOWED,
    "train.num_workers": ALLOWED,
    "train.checkpoint_every": ALLOWED,
    "train.skip_bad_images": ALLOWED,  # skipping images that broke since changes the split: refused by its check
    "eval.batch_size": ALLOWED,
    "eval.num_workers": ALLOWED,
    # the optimizers' state would restore the old rates: the new ones are set in their param groups
    "optim.lr": APPLIED,
    "optim.classifiers_lr": APPLIED,
}


def _flat(config: RunConfig) -> dict[str, Any]:
    flat = {f"{group}.{key}": value for group, values in config.to_dict().items() for key, value in values.items()}
    # an unset scale or margin is the loss's own: compared as the value it trains with
    flat.update({"loss.s": config.loss.scale, "loss.m": config.loss.margin})
    return flat


def absolute_dataset(config: RunConfig) -> RunConfig:
    """`config` with its dataset path absolute, so that a run resumes from any working directory."""
    return config.replace({DATASET: str(Path(config.train.dataset).expanduser().resolve())})


def resume_changes(old: RunConfig, new: RunConfig, source: str) -> dict[str, tuple[Any, Any]]:
    """The options `new` changes from the run's `old` ones, as {key: (old, new)}; refused changes are one error
    that names each of them. A relative dataset path of an older run is read from the current directory."""
    before, after = _flat(absolute_dataset(old)), _flat(absolute_dataset(new))
    changed = {key: (before[key], after[key]) for key in after if before.get(key) != after[key]}
    refused = [key for key in changed if key not in RESUME_CHANGES]
    if refused:
        listing = "; ".join(f"{key}: {changed[key][0]!r} in the run, {changed[key][1]!r} now" for key in refused)
        raise RunFolderError(
            f"{source}: cannot resume with other values of {', '.join(refused)} ({listing}): the run would go on "
            "otherwise than it started. Resume with the run's own values, or start a new run"
        )
    if DATASET in changed and not Path(after[DATASET]).is_dir():
        raise DatasetLayoutError(f"{after[DATASET]}: dataset folder not found (the run's dataset was "
                                 f"{before[DATASET]}); pass the folder the dataset moved to")
    return changed


@dataclass(frozen=True)
class Progress:
    """Where a run stands, read from its checkpoint."""

    checkpoint: Path
    epoch: int  # epochs completed when iteration is 0
    iteration: int
    best_r1: float | None


def read_progress(run_dir: Path) -> Progress | None:
    """The progress in `last.pt` (else `previous.pt`); None when neither reads (resume reports why)."""
    for name in (ckpt.LAST, ckpt.PREVIOUS):
        try:
            state = ckpt.read_checkpoint(run_dir / name)
        except CheckpointError:
            continue
        return Progress(run_dir / name, state["epoch"], state["iteration"], state["best_r1"])
    return None


def check_epochs(progress: Progress, epochs: int, source: str) -> None:
    """A resume cannot shorten a run below the epochs it has trained."""
    if epochs < progress.epoch:
        flag = flag_of(TrainConfig, "epochs")
        raise RunFolderError(f"{source}: option {flag}={epochs} is below the {progress.epoch} epochs the run has "
                             f"trained ({progress.checkpoint}); pass {flag} >= {progress.epoch}")


def record_changes(run_dir: Path, changed: dict[str, tuple[Any, Any]], epoch: int, iteration: int) -> None:
    """Log the accepted changes (terminal and train.log) and append them to history.yaml."""
    if not changed:
        return
    if DATASET in changed:
        log.warning("dataset moved: %s -> %s", *changed[DATASET])
    others = {key: values for key, values in changed.items() if key != DATASET}
    if others:
        log.warning("resumed with changed options: %s",
                    ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in others.items()))
    run_files.append_history(run_dir, {
        "resumed": datetime.now().isoformat(timespec="seconds"),
        "epoch": epoch + 1,  # the epoch the resume continues, after `iteration` of its batches
        "iteration": iteration,
        "changed": {key: {"old": old, "new": new, "how": RESUME_CHANGES[key]} for key, (old, new) in changed.items()},
    })
