"""Everything that happens before the first batch: checks, split, val set, model, state or resume."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cosplace_xs.config import EvalConfig, RunConfig
from cosplace_xs.data.layout import discover_dataset, list_images, require_train_dir
from cosplace_xs.data.scan import scan_images
from cosplace_xs.data.split import TrainSplit, build_split
from cosplace_xs.data.test_set import TestSet, load_test_set
from cosplace_xs.data.train_set import check_batch_fits
from cosplace_xs.device import resolve_device, resolve_precision
from cosplace_xs.errors import BadImageError, CheckpointError
from cosplace_xs.model.network import build_model
from cosplace_xs.training import checkpoint as ckpt
from cosplace_xs.training import run_files
from cosplace_xs.training.distributed import DistributedContext, wrap_model
from cosplace_xs.training.state import TrainingState, new_state, restore, state_dict

log = logging.getLogger(__name__)


@dataclass
class RunSetup:
    """A prepared run: its options, data, device and training state."""

    config: RunConfig
    run_dir: Path
    device: torch.device
    precision: str
    split: TrainSplit
    split_key: str
    val_set: TestSet | None
    eval_config: EvalConfig
    state: TrainingState
    context: DistributedContext
    train_model: torch.nn.Module  # the model, wrapped in DDP under distributed training

    def global_step(self) -> int:
        return self.state.epoch * self.config.train.iterations_per_epoch + self.state.iteration

    def checkpoint_state(self) -> dict[str, Any]:
        return state_dict(self.state, self.config, self.split_key)

    def save_last(self) -> None:
        if self.context.is_main:
            ckpt.write_checkpoint(self.checkpoint_state(), self.run_dir / ckpt.LAST, keep_previous=True)


def _usable_images(train_dir: Path, skip_bad: bool, run_dir: Path) -> list[Path]:
    """The train images, after a scan for undecodable files and bad names (listed, then refused or skipped)."""
    images = list_images(train_dir, "training images")
    report = scan_images(images, require_heading=True)
    if report.ok:
        return images
    bad = report.bad_paths()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / run_files.BAD_IMAGES).write_text(report.format() + "\n")
    if not skip_bad:
        raise BadImageError(
            f"{len(bad)} of {len(images)} training images are unusable (listed in "
            f"{run_dir / run_files.BAD_IMAGES}):\n{report.format(limit=10)}\n"
            "Fix or remove them, or pass --skip-bad-images to train without them"
        )
    log.warning("skipping %d unusable training images (listed in %s)", len(bad), run_dir / run_files.BAD_IMAGES)
    return [path for path in images if path not in bad]


def _load_val_set(config: RunConfig) -> TestSet | None:
    dataset = discover_dataset(config.train.dataset)
    if not config.train.validate or dataset.val is None:
        log.warning("no validation: %s", "turned off" if not config.train.validate else
                    f"{dataset.root}/val/{{database,queries}} not found")
        return None
    val = load_test_set(dataset.val.database_dir.parent, config.eval.positive_dist_threshold, split="val")
    if val.num_database == 0 or val.num_queries == 0:
        log.warning("validation set %s is empty; validation skipped", val.name)
        return None
    return val


def _configure_determinism(device: torch.device) -> None:
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.benchmark = True


def prepare_run(config: RunConfig, run_dir: Path, resume: bool, context: DistributedContext,
                device_name: str) -> RunSetup:
    """Check data and options, build the split, model and state; restore the last checkpoint on resume."""
    device = resolve_device(device_name)
    precision = resolve_precision(config.train.precision, device)
    _configure_determinism(device)
    train_dir = require_train_dir(discover_dataset(config.train.dataset))
    images = _usable_images(train_dir, config.train.skip_bad_images, run_dir)
    split = build_split(train_dir, config.split, images=images)
    split.check_groups_num(config.split.groups_num)
    check_batch_fits(split, config.split.groups_num, config.train.batch_size)
    log.info("split:\n%s", split.summary())
    val_set = _load_val_set(config) if context.is_main else None
    eval_config = dataclasses.replace(config.eval, image_size=config.eval.image_size or config.train.image_size)

    torch.manual_seed(config.train.seed)  # torchvision and CosFace initialise weights from the global RNG
    model = build_model(config.model if not resume else dataclasses.replace(config.model, pretrained="none"))
    model = model.to(device)
    if config.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    classes = [len(split.group(i).class_ids) for i in range(config.split.groups_num)]
    state = new_state(model, classes, config, device)
    context.batch_slice(config.train.batch_size)
    run = RunSetup(config, run_dir, device, precision, split, split.split_key, val_set, eval_config, state,
                   context, wrap_model(model, context))
    if resume:
        _resume(run)
    if context.is_main:
        config.save(run_dir / run_files.CONFIG)
    return run


def _resume(run: RunSetup) -> None:
    """Continue from `last.pt`; if it is unreadable, from `previous.pt` when one is kept, saying so."""
    last = run.run_dir / ckpt.LAST
    try:
        checkpoint, source = ckpt.read_checkpoint(last), last
    except CheckpointError as error:
        previous = run.run_dir / ckpt.PREVIOUS
        if not previous.is_file():
            raise
        log.warning("%s; resuming from the previous checkpoint %s instead", error, previous)
        checkpoint, source = ckpt.read_checkpoint(previous), previous
    restore(run.state, checkpoint, run.split_key, source)
    log.info("resumed %s at epoch %d, iteration %d", source, run.state.epoch + 1, run.state.iteration)
