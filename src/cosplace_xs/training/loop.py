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

from cosplace_xs import checkpoints as ckpt
from cosplace_xs import seeding
from cosplace_xs.augment import BatchAugmentation, training_read_size
from cosplace_xs.config import OptimConfig, RunConfig, TrainConfig
from cosplace_xs.data.train_set import GroupBatches
from cosplace_xs.data.workers import start_worker
from cosplace_xs.device import autocast
from cosplace_xs.errors import TrainingDivergedError
from cosplace_xs.evaluation.evaluate import evaluate_model
from cosplace_xs.evaluation.inference import Inference
from cosplace_xs.options import flag_of
from cosplace_xs.progress import progress_bar, time_left
from cosplace_xs.training import run_files
from cosplace_xs.training.distributed import average_gradients, average_value, barrier, init_distributed, shutdown
from cosplace_xs.training.optim import move_classifier
from cosplace_xs.training.setup import RunSetup, prepare_run
from cosplace_xs.training.stopping import StopRequest, TrainingInterrupted
from cosplace_xs.visualize.curves import plot_curves, read_step_losses

log = logging.getLogger(__name__)

# what evaluation and predict need of a run: best.pt holds only these (a third of last.pt's size for ResNet-18);
# the optimizers, the group classifiers and the scaler, which only a resume needs, live in last.pt/previous.pt
BEST_KEYS = ("config", "model", "epoch", "best_r1", "history")
DIVERGENCE_FIX = (f"lower {flag_of(OptimConfig, 'lr')} or {flag_of(OptimConfig, 'classifiers_lr')}, "
                  f"or use {flag_of(TrainConfig, 'precision')} fp32")


@dataclass
class TrainResult:
    """What a finished run leaves: its folder, best val R@1 and per-epoch history."""

    run_dir: Path
    best_r1: float | None
    history: list[dict[str, Any]]

    @property
    def train_seconds(self) -> float:
        """The run's training time (steps only, without validation), over every epoch and resume."""
        return sum(row.get("train_seconds", 0.0) for row in self.history)


def train(config: RunConfig, run_dir: Path, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train (or resume) a run in `run_dir`; checkpoints `last.pt` every `checkpoint_every` iterations and
    at each epoch end, `best.pt` whenever val R@1 improves. SIGINT or SIGTERM stops it after the current step
    with last.pt written (TrainingInterrupted)."""
    context, device_name = init_distributed(config.train.device)
    progress = progress and context.is_main
    with run_files.RunLogFile(run_dir, enabled=context.is_main):
        # data, split, model, optimizers; on resume, the state of last.pt
        run = prepare_run(config, run_dir, resume, context, device_name, progress)
        config, state, device, iterations = run.config, run.state, run.device, run.config.train.iterations_per_epoch
        augment = BatchAugmentation(config.augment, config.train.image_size)
        inference = Inference.of_run(config, device, progress)
        # a step's loss is logged at the count of steps done: a resume keeps those and drops any later (unsaved) ones
        steps_done = state.epoch * iterations + state.iteration
        writer = SummaryWriter(run_dir / run_files.TENSORBOARD, purge_step=steps_done + 1) if context.is_main else None
        stop = StopRequest()

        def save_checkpoints(best: bool = False) -> None:
            """last.pt (keeping the one it replaces as previous.pt) and, when `best`, best.pt; every weight is
            checked finite first, on every process, so that they all stop together."""
            _require_finite_weights(run)
            checkpoint = {
                "config": config.to_dict(),
                "split_key": run.split_key,  # a resume refuses another class/group split
                "model": state.model.state_dict(),
                "epoch": state.epoch,  # with `iteration`: the next batch to train
                "iteration": state.iteration,
                "best_r1": state.best_r1,
                "history": state.history,
                "model_optimizer": state.model_optimizer.state_dict(),
                "classifiers": [c.state_dict() for c in state.classifiers],
                "classifier_optimizers": [o.state_dict() for o in state.classifier_optimizers],
                "scaler": state.scaler.state_dict(),
                # only for an exact mid-epoch resume: the finished steps' share of the epoch's metrics row
                "epoch_loss_sum": state.epoch_loss_sum,
                "epoch_images": state.epoch_images,
                "epoch_seconds": state.epoch_seconds,
            }
            with stop.writing():  # no signal cuts a write short
                if best and context.is_main:
                    ckpt.write_checkpoint({key: checkpoint[key] for key in BEST_KEYS}, run_dir / ckpt.BEST)
                if context.is_main:
                    ckpt.write_checkpoint(checkpoint, run_dir / ckpt.LAST, keep_previous=True)

        try:
            with stop.installed():
                while state.epoch < config.train.epochs:
                    group_index = state.epoch % config.split.groups_num
                    classifier = state.classifiers[group_index]
                    classifier_optimizer = state.classifier_optimizers[group_index]
                    move_classifier(classifier, classifier_optimizer, device)  # on the device for its epoch only
                    state.model.train()
                    bar = progress_bar(iterations, f"epoch {state.epoch + 1}/{config.train.epochs} group "
                                       f"{group_index}", "batch", progress, initial=state.iteration)
                    start, seconds_before = time.perf_counter(), state.epoch_seconds
                    for images, labels in _loader(run, group_index):
                        # the step: augment, forward, CosFace loss, backward, both optimizers
                        images = images.to(device, non_blocking=True)
                        labels = labels.to(device, non_blocking=True)
                        images = augment(images, seeding.generator(config.train.seed, state.epoch, state.iteration,
                                                                   seeding.AUGMENT, context.rank))
                        if config.train.channels_last:
                            images = images.contiguous(memory_format=torch.channels_last)
                        state.model_optimizer.zero_grad(set_to_none=True)
                        classifier_optimizer.zero_grad(set_to_none=True)
                        with autocast(device, run.precision):
                            logits = classifier(run.train_model(images).float(), labels)
                            loss = F.cross_entropy(logits, labels)
                        loss_value = average_value(loss.item(), context, device)
                        if not math.isfinite(loss_value):
                            raise TrainingDivergedError(
                                f"the loss became {loss_value} at epoch {state.epoch + 1}, iteration "
                                f"{state.iteration + 1}; training stopped. {_last_good_checkpoint(run)}; "
                                f"{DIVERGENCE_FIX}")
                        state.scaler.scale(loss).backward()
                        average_gradients(classifier.parameters(), context)  # DDP averages the model's
                        state.scaler.step(state.model_optimizer)
                        state.scaler.step(classifier_optimizer)
                        state.scaler.update()

                        state.iteration += 1
                        images_in_step = len(labels) * context.world_size
                        state.epoch_loss_sum += loss_value * images_in_step
                        state.epoch_images += images_in_step
                        state.epoch_seconds = seconds_before + time.perf_counter() - start
                        if writer is not None:
                            writer.add_scalar("train/loss", loss_value, state.epoch * iterations + state.iteration)
                        bar.update(1)
                        bar.set_postfix(loss=f"{loss_value:.3f}",
                                        img_s=f"{state.epoch_images / max(state.epoch_seconds, 1e-9):.1f}")
                        due = config.train.checkpoint_every and state.iteration % config.train.checkpoint_every == 0 \
                            and state.iteration < iterations  # the epoch's end writes its own
                        if due:
                            save_checkpoints()
                        signum = stop.agreed(context, device)  # the safe point: the step is done, nothing half-updated
                        if signum is not None:
                            if not due:
                                save_checkpoints()
                            bar.close()
                            raise _interrupted(run, signum)
                    bar.close()
                    move_classifier(classifier, classifier_optimizer, torch.device("cpu"))

                    # the epoch's row of metrics.csv; validation decides best.pt (every epoch is best without it)
                    _require_finite_weights(run)  # NaN weights would validate to R@1 0 for nothing
                    row: dict[str, Any] = {
                        "epoch": state.epoch + 1,
                        "group": group_index,
                        "loss": state.epoch_loss_sum / max(state.epoch_images, 1),
                        "train_seconds": state.epoch_seconds,
                        "images_per_s": state.epoch_images / max(state.epoch_seconds, 1e-9),
                        "lr": state.model_optimizer.param_groups[0]["lr"],
                        "classifiers_lr": config.optim.classifiers_lr,
                    }
                    improved = run.val_set is None
                    if run.val_set is not None:
                        result = evaluate_model(state.model, run.val_set, config.eval, inference)
                        row.update({f"val_R@{n}": r for n, r in result.recalls.items()})
                        row["val_seconds"] = result.seconds
                        improved = state.best_r1 is None or result.recalls[1] > state.best_r1
                        if improved:
                            state.best_r1 = result.recalls[1]
                        log.info("epoch %d: loss %.4f, val R@1 %.1f R@5 %.1f, %.1f images/s", row["epoch"],
                                 row["loss"], result.recalls[1], result.recalls.get(5, float("nan")),
                                 row["images_per_s"])
                    else:
                        log.info("epoch %d: loss %.4f, %.1f images/s (no val set)", row["epoch"], row["loss"],
                                 row["images_per_s"])
                    state.history.append(row)
                    if len(state.history) < config.train.epochs:  # the whole run's ETA, at its pace so far
                        log.info("%s", time_left(len(state.history), config.train.epochs, sum(
                            r.get("train_seconds", 0.0) + r.get("val_seconds", 0.0) for r in state.history), "epoch"))
                    state.epoch, state.iteration = state.epoch + 1, 0
                    state.epoch_loss_sum, state.epoch_images, state.epoch_seconds = 0.0, 0, 0.0
                    if writer is not None:
                        with stop.writing():
                            for key, value in row.items():
                                if key != "epoch":
                                    writer.add_scalar(f"epoch/{key}", value, row["epoch"])
                            run_files.write_metrics_csv(run_dir / run_files.METRICS, state.history)
                    save_checkpoints(best=improved)
                    barrier(context)
                    signum = stop.agreed(context, device)
                    if signum is not None and state.epoch < config.train.epochs:
                        raise _interrupted(run, signum)  # the epoch's end wrote last.pt
        except TrainingInterrupted:
            if writer is not None:
                writer.flush()  # the curves read the steps' losses back from it
            _render_curves(run)
            raise
        finally:
            if writer is not None:
                writer.close()
            shutdown(context)
        _render_curves(run)
        result = TrainResult(run_dir=run_dir, best_r1=state.best_r1, history=state.history)
        log.info("finished %d epochs in %.1f s of training; best val R@1 %s; run folder %s", config.train.epochs,
                 result.train_seconds, state.best_r1, run_dir)
        return result


def _loader(run: RunSetup, group_index: int) -> DataLoader:
    """The epoch's batches from the current iteration on: one image of each of `batch_size` classes of the group
    (this process's slice of them under distributed training)."""
    train = run.config.train
    read_size = training_read_size(train, run.config.augment)
    batches = GroupBatches(run.split, run.split.group(group_index), train.batch_size, read_size,
                           train.seed, run.state.epoch, run.batch_slice, train.max_image_pixels)
    workers = train.num_workers
    # a GPU run's workers keep their priority: they feed a device that does not share the cores (os.nice: POSIX)
    yielding = workers > 0 and run.device.type == "cpu" and hasattr(os, "nice")
    return DataLoader(
        batches, batch_size=None, sampler=range(run.state.iteration, train.iterations_per_epoch),
        num_workers=workers, pin_memory=run.device.type == "cuda", prefetch_factor=4 if workers else None,
        # each epoch has its own GroupBatches (group and seeds change), so workers cannot outlive it
        persistent_workers=False, worker_init_fn=partial(start_worker, yielding),
    )


def _render_curves(run: RunSetup) -> None:
    """curves.png from the whole history: once at the run's end or interruption, not every epoch (matplotlib
    took a fifth of a small run's time)."""
    if run.context.is_main and run.state.history:
        steps = read_step_losses(run.run_dir / run_files.TENSORBOARD, run.config.train.iterations_per_epoch)
        plot_curves({run.run_dir.name: run.state.history}, run.run_dir / run_files.CURVES,
                    step_losses={run.run_dir.name: steps})


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


def _require_finite_weights(run: RunSetup) -> None:
    state = run.state
    bad = ckpt.non_finite_weights({"model": state.model.state_dict(),
                                   "classifiers": [c.state_dict() for c in state.classifiers]})
    if bad:
        raise TrainingDivergedError(
            f"the weights became NaN or infinite by epoch {state.epoch + 1}, iteration {state.iteration} "
            f"({len(bad)} tensors, e.g. {', '.join(bad[:3])}); training stopped without checkpointing them. "
            f"{_last_good_checkpoint(run)}; {DIVERGENCE_FIX}"
        )
