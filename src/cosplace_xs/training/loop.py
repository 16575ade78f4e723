"""The CosPlace training loop: epoch e trains group e mod groups_num for `iterations_per_epoch` batches."""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from cosplace_xs import checkpoints as ckpt
from cosplace_xs import seeding
from cosplace_xs.augment import BatchAugmentation
from cosplace_xs.config import RunConfig
from cosplace_xs.data.train_set import GroupBatches
from cosplace_xs.device import autocast
from cosplace_xs.errors import TrainingDivergedError
from cosplace_xs.evaluation.evaluate import evaluate_model
from cosplace_xs.training import run_files
from cosplace_xs.training.distributed import (
    average_gradients,
    average_value,
    barrier,
    init_distributed,
    shutdown,
)
from cosplace_xs.training.optim import move_classifier
from cosplace_xs.training.setup import RunSetup, prepare_run
from cosplace_xs.training.stopping import StopRequest, TrainingInterrupted
from cosplace_xs.visualize.curves import plot_curves

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished run leaves: its folder, best val R@1 and per-epoch history."""

    run_dir: Path
    best_r1: float | None
    history: list[dict[str, Any]]


def train(config: RunConfig, run_dir: Path, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train (or resume) a run in `run_dir`; checkpoints `last.pt` every `checkpoint_every` iterations and
    at each epoch end, `best.pt` whenever val R@1 improves. SIGINT or SIGTERM stops it after the current step
    with last.pt written (TrainingInterrupted)."""
    context, device_name = init_distributed(config.train.device)
    with run_files.RunLogFile(run_dir, enabled=context.is_main):
        progress = progress and context.is_main
        run = prepare_run(config, run_dir, resume, context, device_name, progress)
        writer = SummaryWriter(run_dir / run_files.TENSORBOARD, purge_step=run.global_step()) \
            if context.is_main else None
        stop = StopRequest()
        try:
            with stop.installed():
                while run.state.epoch < config.train.epochs:
                    _train_epoch(run, writer, progress, stop)
                    _end_epoch(run, writer, progress, stop)
                    barrier(context)
                    signum = stop.agreed(run.context, run.device)
                    if signum is not None and run.state.epoch < config.train.epochs:
                        raise _interrupted(run, signum)  # the epoch's end wrote last.pt
        finally:
            if writer is not None:
                writer.close()
            shutdown(context)
        log.info("finished %d epochs; best val R@1 %s; run folder %s", config.train.epochs,
                 run.state.best_r1, run_dir)
        return TrainResult(run_dir=run_dir, best_r1=run.state.best_r1, history=run.state.history)


def _interrupted(run: RunSetup, signum: int) -> TrainingInterrupted:
    state = run.state
    message = (f"stopped by {signal.Signals(signum).name} at epoch {state.epoch + 1}, iteration {state.iteration}; "
               f"{run.run_dir / ckpt.LAST} holds every finished step. Continue with: "
               f"cosplace-xs train --resume {run.run_dir}")
    log.warning("%s", message)
    return TrainingInterrupted(message, signum)


def _last_good_checkpoint(run: RunSetup) -> str:
    # every last.pt is checked finite before it is written, so the one on disk is good
    last = run.run_dir / ckpt.LAST
    return f"The last good checkpoint is {last}" if last.is_file() else "No checkpoint was written yet"


def _require_finite_weights(run: RunSetup, state: dict[str, Any]) -> None:
    bad = ckpt.non_finite_weights(state)
    if bad:
        raise TrainingDivergedError(
            f"the weights became NaN or infinite by epoch {run.state.epoch + 1}, iteration {run.state.iteration} "
            f"({len(bad)} tensors, e.g. {', '.join(bad[:3])}); training stopped without checkpointing them. "
            f"{_last_good_checkpoint(run)}; lower --lr or --classifiers-lr, or use --precision fp32"
        )


def _save_checkpoints(run: RunSetup, stop: StopRequest, best: bool = False) -> None:
    """Write last.pt (and best.pt) once every weight is known finite; no signal interrupts the writes."""
    state = run.checkpoint_state()
    _require_finite_weights(run, state)  # on every process: they hold the same weights, so they stop together
    with stop.writing():
        if best and run.context.is_main:
            ckpt.write_checkpoint(state, run.run_dir / ckpt.BEST)
        run.save_last()


def _start_worker(yielding: bool, worker_id: int) -> None:
    """Start-up of a data-loading worker: Ctrl-C at a terminal reaches every process of its group, and the main
    process stops at its next safe point, so a worker must not die of it first. A CPU run's worker also takes
    the lowest scheduling priority."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if yielding:
        # the model's threads hold every core; a worker that preempts one stalls the others at its next barrier,
        # while a worker at the lowest priority decodes in the cores' idle moments, ahead of time (prefetch)
        os.nice(19)


def _loader(run: RunSetup, group_index: int) -> DataLoader:
    train = run.config.train
    batches = GroupBatches(run.split, run.split.group(group_index), train.batch_size, train.image_size,
                           train.seed, run.state.epoch, run.context.batch_slice(train.batch_size))
    workers = train.num_workers
    # a GPU run's workers keep their priority: they feed a device that does not share the cores (os.nice: POSIX)
    yielding = workers > 0 and run.device.type == "cpu" and hasattr(os, "nice")
    return DataLoader(
        batches, batch_size=None, sampler=range(run.state.iteration, train.iterations_per_epoch),
        num_workers=workers, pin_memory=run.device.type == "cuda", prefetch_factor=4 if workers else None,
        # each epoch has its own GroupBatches (group and seeds change), so workers cannot outlive it
        persistent_workers=False, worker_init_fn=partial(_start_worker, yielding),
    )


def _train_step(run: RunSetup, augment: BatchAugmentation, classifier: torch.nn.Module,
                classifier_optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor) -> float:
    state, train = run.state, run.config.train
    images = images.to(run.device, non_blocking=True)
    labels = labels.to(run.device, non_blocking=True)
    images = augment(images, seeding.generator(train.seed, state.epoch, state.iteration, seeding.AUGMENT,
                                               run.context.rank))
    if train.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    state.model_optimizer.zero_grad(set_to_none=True)
    classifier_optimizer.zero_grad(set_to_none=True)
    with autocast(run.device, run.precision):
        descriptors = run.train_model(images)
        logits = classifier(descriptors.float(), labels)
        loss = F.cross_entropy(logits, labels)
    value = average_value(loss.item(), run.context, run.device)
    if not math.isfinite(value):
        raise TrainingDivergedError(
            f"the loss became {value} at epoch {state.epoch + 1}, iteration {state.iteration + 1}; training stopped. "
            f"{_last_good_checkpoint(run)}; lower --lr or --classifiers-lr, or use --precision fp32"
        )
    state.scaler.scale(loss).backward()
    average_gradients(classifier.parameters(), run.context)
    state.scaler.step(state.model_optimizer)
    state.scaler.step(classifier_optimizer)
    state.scaler.update()
    return value


def _train_epoch(run: RunSetup, writer: SummaryWriter | None, progress: bool, stop: StopRequest) -> None:
    state, train = run.state, run.config.train
    group_index = state.epoch % run.config.split.groups_num
    classifier = state.classifiers[group_index]
    classifier_optimizer = state.classifier_optimizers[group_index]
    move_classifier(classifier, classifier_optimizer, run.device)
    state.model.train()
    augment = BatchAugmentation(run.config.augment, train.image_size)
    bar = tqdm(total=train.iterations_per_epoch, initial=state.iteration, disable=not progress,
               desc=f"epoch {state.epoch + 1}/{train.epochs} group {group_index}", unit="batch",
               dynamic_ncols=True)
    start = time.perf_counter()
    seconds_before = state.epoch_seconds
    for images, labels in _loader(run, group_index):
        loss = _train_step(run, augment, classifier, classifier_optimizer, images, labels)
        state.iteration += 1
        batch = len(labels) * run.context.world_size
        state.epoch_loss_sum += loss * batch
        state.epoch_images += batch
        state.epoch_seconds = seconds_before + time.perf_counter() - start
        if writer is not None:
            writer.add_scalar("train/loss", loss, run.global_step())
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", img_s=f"{state.epoch_images / max(state.epoch_seconds, 1e-9):.1f}")
        due = train.checkpoint_every and state.iteration % train.checkpoint_every == 0 \
            and state.iteration < train.iterations_per_epoch
        if due:
            _save_checkpoints(run, stop)
        signum = stop.agreed(run.context, run.device)  # the safe point: a step is done, nothing is half-updated
        if signum is not None:
            if not due:
                _save_checkpoints(run, stop)
            bar.close()
            raise _interrupted(run, signum)
    bar.close()
    move_classifier(classifier, classifier_optimizer, torch.device("cpu"))


def _end_epoch(run: RunSetup, writer: SummaryWriter | None, progress: bool, stop: StopRequest) -> None:
    """Validate, record the epoch's metrics, and checkpoint (on the main process only)."""
    state, config = run.state, run.config
    _require_finite_weights(run, run.checkpoint_state())  # NaN weights would validate to R@1 0 for nothing
    row: dict[str, Any] = {
        "epoch": state.epoch + 1,
        "group": state.epoch % config.split.groups_num,
        "loss": state.epoch_loss_sum / max(state.epoch_images, 1),
        "images_per_s": state.epoch_images / max(state.epoch_seconds, 1e-9),
        "lr": state.model_optimizer.param_groups[0]["lr"],
        "classifiers_lr": config.optim.classifiers_lr,
    }
    improved = False
    if run.val_set is not None:
        result = evaluate_model(state.model, run.val_set, run.eval_config, run.device, run.precision,
                                progress=progress)
        row.update({f"val_R@{n}": r for n, r in result.recalls.items()})
        row["val_seconds"] = result.seconds
        improved = state.best_r1 is None or result.recalls[1] > state.best_r1
        if improved:
            state.best_r1 = result.recalls[1]
        log.info("epoch %d: loss %.4f, val R@1 %.1f R@5 %.1f, %.1f images/s", row["epoch"], row["loss"],
                 result.recalls[1], result.recalls.get(5, float("nan")), row["images_per_s"])
    else:
        log.info("epoch %d: loss %.4f, %.1f images/s (no val set)", row["epoch"], row["loss"], row["images_per_s"])
    state.history.append(row)
    state.epoch += 1
    state.iteration = 0
    state.epoch_loss_sum, state.epoch_images, state.epoch_seconds = 0.0, 0, 0.0
    if writer is not None:
        with stop.writing():
            for key, value in row.items():
                if key != "epoch":
                    writer.add_scalar(f"epoch/{key}", value, row["epoch"])
            run_files.write_metrics_csv(run.run_dir / run_files.METRICS, state.history)
            plot_curves({run.run_dir.name: state.history}, run.run_dir / run_files.CURVES)
    _save_checkpoints(run, stop, best=improved or run.val_set is None)
