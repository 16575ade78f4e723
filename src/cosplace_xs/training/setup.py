"""Everything that happens before the first batch: checks, split, val set, model, state or resume."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cosplace_xs import checkpoints as ckpt
from cosplace_xs.config import RunConfig, SplitConfig, TrainConfig
from cosplace_xs.data import scan_cache
from cosplace_xs.data.layout import discover_dataset, list_images, require_train_dir
from cosplace_xs.data.scan import ScanReport, scan_images
from cosplace_xs.data.split import TrainSplit, build_split
from cosplace_xs.data.test_set import TestSet, find_positives, load_test_set, require_a_positive
from cosplace_xs.data.train_set import check_batch_fits
from cosplace_xs.device import precision_before_bf16, resolve_device, resolve_precision
from cosplace_xs.errors import BadFileNameError, BadImageError, CheckpointError, ConfigError, DatasetLayoutError
from cosplace_xs.model.compilation import compile_in_place, require_compiler
from cosplace_xs.model.network import GeoLocalizationNet, build_model
from cosplace_xs.model.published_weights import load_starting_weights
from cosplace_xs.options import flag_of, no_flag_of
from cosplace_xs.training import run_files
from cosplace_xs.training.distributed import DistributedContext, wrap_model
from cosplace_xs.training.netvlad_init import initialise_netvlad
from cosplace_xs.training.resume import (
    Progress,
    absolute_dataset,
    check_epochs,
    record_changes,
    resume_changes,
)
from cosplace_xs.training.state import TrainingState, new_state, restore

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
    state: TrainingState
    context: DistributedContext
    train_model: torch.nn.Module  # the model, wrapped in DDP under distributed training
    batch_slice: slice  # this process's part of every batch (all of it on one device)


def _unusable_files(scans: list[tuple[str, int, ScanReport]], skip_bad: bool, run_dir: Path) -> set[Path]:
    """The files that scans of (what, how many, report) found unusable: listed in `bad_images.txt`, then
    refused before training starts (the default) or skipped with a warning; harmless problems are logged."""
    for what, _, report in scans:
        if report.ok and report.num_warnings + len(report.wrong_extensions):
            log.warning("%s: problems that do not stop training:\n%s", what, report.format(limit=10))
    failed = [(what, count, report) for what, count, report in scans if not report.ok]
    if not failed:
        return set()
    listing = run_dir / run_files.BAD_IMAGES
    run_dir.mkdir(parents=True, exist_ok=True)
    listing.write_text("".join(f"{what}: {report.format()}\n" for what, _, report in failed))
    counts = ", ".join(f"{len(report.bad_paths())} of {count} {what}" for what, count, report in failed)
    if not skip_bad:
        raise BadImageError(
            f"unusable images: {counts} (listed in {listing}):\n"
            + "\n".join(f"{what}: {report.format(limit=10)}" for what, _, report in failed)
            + f"\nFix or remove them, or pass {flag_of(TrainConfig, 'skip_bad_images')} to train without them"
        )
    log.warning("skipping unusable images: %s (listed in %s)", counts, listing)
    return set().union(*(report.bad_paths() for _, _, report in failed))


def _load_val_set(config: RunConfig) -> TestSet | None:
    dataset = discover_dataset(config.train.dataset)
    if not config.train.validate or dataset.val is None:
        log.warning("no validation: %s", "turned off" if not config.train.validate else
                    f"{dataset.root}/val/{{database,queries}} not found")
        return None
    try:
        return load_test_set(dataset.val.database_dir.parent, config.eval.positive_dist_threshold, split="val")
    except DatasetLayoutError as error:  # val/database/ or val/queries/ holds no image
        log.warning("validation skipped: %s", error)
        return None


def _val_set_without(val: TestSet, skipped: set[Path]) -> TestSet | None:
    """The val set less the skipped files (positives found again); None when no database image or query is left."""
    database = [i for i, path in enumerate(val.database_paths) if path not in skipped]
    queries = [i for i, path in enumerate(val.queries_paths) if path not in skipped]
    if not database or not queries:
        log.warning("validation skipped: no usable %s left in %s", "database image" if not database else "query",
                    val.name)
        return None
    database_utm, queries_utm = val.database_utm[database], val.queries_utm[queries]
    return dataclasses.replace(
        val, database_paths=tuple(val.database_paths[i] for i in database),
        queries_paths=tuple(val.queries_paths[i] for i in queries), database_utm=database_utm,
        queries_utm=queries_utm, positives=find_positives(database_utm, queries_utm, val.positive_dist_threshold))


def _warn_single_class_groups(split: TrainSplit, groups_num: int) -> None:
    single = [index for index in range(groups_num) if len(split.group(index).class_ids) == 1]
    if single:
        log.warning("groups with a single class: %s; CosFace's loss over one class is always 0, so their epochs "
                    "teach the model nothing; smaller %s / %s or a lower %s give groups more classes",
                    ", ".join(map(str, single)), flag_of(SplitConfig, "N"), flag_of(SplitConfig, "L"),
                    flag_of(SplitConfig, "min_images_per_class"))


def _check_batch_norm_input(model: GeoLocalizationNet, config: RunConfig, images_per_step: int,
                            device: torch.device) -> None:
    """BatchNorm in training mode needs more than one value per channel: one image a step whose last feature map
    is 1 x 1 (a ResNet at --image-size <= 32) would fail at the first batch, so it is refused here."""
    if images_per_step > 1 or not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return
    size = config.train.image_size
    model.eval()  # the probe must not touch the running statistics
    with torch.no_grad():
        features = model.backbone(torch.zeros(1, 3, size, size, device=device))
        height, width = (features[0] if isinstance(features, tuple) else features).shape[-2:]  # a ViT: (map, CLS)
    model.train()
    if height * width == 1:
        batch_flag, size_flag = flag_of(TrainConfig, "batch_size"), flag_of(TrainConfig, "image_size")
        raise ConfigError(
            f"option {batch_flag}={config.train.batch_size} trains one image per step (per process), and at "
            f"{size_flag}={size} the last feature map of {config.model.backbone} is 1x1: BatchNorm cannot normalise "
            f"a single value per channel; use {batch_flag} >= {2 * config.train.batch_size}, or a larger {size_flag}"
        )


def _configure_determinism(device: torch.device) -> None:
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.benchmark = True


def _checked_split(train_dir: Path, config: RunConfig, images: list[Path]) -> TrainSplit:
    split = build_split(train_dir, config.split, images=images)
    split.check_groups_num(config.split.groups_num)
    check_batch_fits(split, config.split.groups_num, config.train.batch_size)
    return split


@contextlib.contextmanager
def _nondeterministic() -> Iterator[None]:
    """torch's deterministic algorithms off inside: the image check's worker processes inherit the setting, and
    under it they decoded 224-pixel images 10 times slower, and hung once the model had been built (the
    synthetic city's `train` never reached its first batch)."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(False)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def checked_images(paths: list[Path], desc: str, progress: bool, max_pixels: int,
                   require_heading: bool = False) -> ScanReport:
    """`scan_images`' report of `paths`, or an empty one when the same files were checked without any problem
    before (scan_cache): decoding every image took most of the set-up of a run on the synthetic city."""
    key = scan_cache.scan_key(paths, require_heading, max_pixels)
    if scan_cache.known_clean(key):
        log.info("%s: %d images unchanged since a check found no problem; not decoded again", desc, len(paths))
        return ScanReport(scanned=len(paths))
    with _nondeterministic():
        report = scan_images(paths, require_heading=require_heading, progress=progress, desc=desc,
                             max_pixels=max_pixels)
    if not any(report.counts().values()):
        scan_cache.remember_clean(key)
    return report


def _run_precision(precision: str, run_dir: Path, resume: bool, device: torch.device) -> str:
    """The precision the run trains in. A resume asked for `auto` (a sweep's trial asks for its options, not the
    run's) trains in the one the run recorded; `auto` recorded by a version that did not resolve it means what
    `auto` meant then."""
    config_file = run_dir / run_files.CONFIG
    if resume and precision == "auto" and config_file.is_file():
        precision = RunConfig.load(config_file, complete=True).train.precision
        if precision == "auto":
            return precision_before_bf16(device)
    return resolve_precision(precision, device)


def prepare_run(config: RunConfig, run_dir: Path, resume: bool, context: DistributedContext,
                device_name: str, progress: bool = True) -> RunSetup:
    """Check data and options, build the split, model and state; restore the last checkpoint on resume.

    The checks that need no image decoded (split, batch size, weights) come first, so a refused option fails in
    seconds, before the images are scanned."""
    config = absolute_dataset(config)
    if resume and not any((run_dir / name).exists() for name in (ckpt.LAST, ckpt.PREVIOUS)):
        # stopped before its first checkpoint: nothing to continue, nothing lost by starting again
        log.warning("%s: no checkpoint yet (the run stopped before its first one); training it from the beginning",
                    run_dir)
        resume = False
    device = resolve_device(device_name)
    precision = _run_precision(config.train.precision, run_dir, resume, device)
    # recorded resolved in config.yaml and the checkpoints: `auto` may choose otherwise on another machine
    config = config.replace({"train.precision": precision})
    if config.train.compile:
        require_compiler(device)
    _configure_determinism(device)
    train_dir = require_train_dir(discover_dataset(config.train.dataset))
    images = list_images(train_dir, "training images", config.train.image_extensions,
                         config.train.extensions_case_sensitive)
    # removing unusable images can only empty groups, so a split of all images that fails its checks fails anyway
    try:
        split: TrainSplit | None = _checked_split(train_dir, config, images)
    except BadFileNameError:  # the scan below lists every bad name, with the other unusable files, at once
        split = None
    torch.manual_seed(config.train.seed)  # torchvision and CosFace initialise weights from the global RNG
    # a resume restores its own weights, and --weights gives the whole network's: no ImageNet weights for either
    from_imagenet = not resume and config.model.weights is None
    model = build_model(config.model if from_imagenet else dataclasses.replace(config.model, pretrained="none"))
    if config.model.weights is not None and not resume:
        load_starting_weights(model, config.model.weights)
    classifier_rng = torch.get_rng_state()  # the scans below must not change the classifiers' initial weights
    val_set = _load_val_set(config) if context.is_main else None
    # every image is checked before the first batch, so a broken one cannot stop the run at epoch 7
    scans = [("training images", len(images), checked_images(images, "checking training", progress,
                                                                 config.train.max_image_pixels, require_heading=True))]
    if val_set is not None:
        scans += [(f"val {what}", len(paths), checked_images(paths, f"checking val {what}", progress,
                                                             config.train.max_image_pixels))
                  for what, paths in (("database images", val_set.database_paths),
                                      ("queries", val_set.queries_paths))]
    skipped = _unusable_files(scans, config.train.skip_bad_images, run_dir)
    if skipped:
        images = [path for path in images if path not in skipped]
        val_set = _val_set_without(val_set, skipped) if val_set is not None else None
    if skipped or split is None:
        split = _checked_split(train_dir, config, images)
    if val_set is not None:
        require_a_positive(val_set, f"or train with {no_flag_of(TrainConfig, 'validate')}")
    _warn_single_class_groups(split, config.split.groups_num)
    log.info("%s", split.summary(max_groups=0))
    log.debug("groups of the split:\n%s", split.summary())  # the table for -v; `split-info` prints it on demand

    model = model.to(device)
    if from_imagenet:  # a resume or --weights brings its own NetVLAD centroids
        initialise_netvlad(model, images, config.train, device)
    if config.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if config.train.compile:
        compile_in_place(model, device)
    classes = [len(split.group(i).class_ids) for i in range(config.split.groups_num)]
    torch.set_rng_state(classifier_rng)
    state = new_state(model, classes, config, device)
    batch_slice = context.batch_slice(config.train.batch_size)
    _check_batch_norm_input(model, config, batch_slice.stop - batch_slice.start, device)
    run = RunSetup(config, run_dir, device, precision, split, split.split_key, val_set, state, context,
                   wrap_model(model, context), batch_slice)
    if resume:
        _resume(run)
    if context.is_main:
        run_files.save_config(run_dir, config)
    return run


def _resume(run: RunSetup) -> None:
    """Continue from `last.pt`; if it is unreadable, from `previous.pt` when one is kept, saying so."""
    last, previous = run.run_dir / ckpt.LAST, run.run_dir / ckpt.PREVIOUS
    try:
        checkpoint, source = ckpt.read_checkpoint(last), last
    except CheckpointError as error:
        if not previous.is_file():
            raise
        log.warning("%s; resuming from the previous checkpoint %s instead", error, previous)
        checkpoint, source = ckpt.read_checkpoint(previous), previous
    recorded = RunConfig.from_dict(checkpoint["config"], str(source))
    if recorded.train.precision == "auto":  # from a version that did not record the precision: _run_precision's
        recorded = recorded.replace({"train.precision": run.precision})
    changed = resume_changes(recorded, run.config, str(source))
    restore(run.state, checkpoint, run.split_key, source)
    state = run.state
    check_epochs(Progress(source, state.epoch, state.iteration, state.best_r1), run.config.train.epochs,
                 str(run.run_dir))
    _apply_learning_rates(run, changed)
    if run.context.is_main:
        record_changes(run.run_dir, changed, state.epoch, state.iteration)
    if state.epoch >= run.config.train.epochs:
        log.info("%s: the run is complete (%d epochs, best val R@1 %s); nothing to train", source, state.epoch,
                 state.best_r1)
    else:
        log.info("resumed %s at epoch %d, iteration %d", source, state.epoch + 1, state.iteration)


def _apply_learning_rates(run: RunSetup, changed: dict[str, tuple[object, object]]) -> None:
    """Set the learning rates a resume changed in the restored optimizers, which hold the run's old ones."""
    if "optim.lr" in changed:
        for group in run.state.model_optimizer.param_groups:
            group["lr"] = run.config.optim.lr
    if "optim.classifiers_lr" in changed:
        for optimizer in run.state.classifier_optimizers:
            for group in optimizer.param_groups:
                group["lr"] = run.config.optim.classifiers_lr
