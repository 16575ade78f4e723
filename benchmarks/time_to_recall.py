"""What a user waits for: wall time until a training run first reaches a validation R@1, for the default settings
and each speed option, with the images/s of its training steps against the bare step of the same precision.

Usage: python benchmarks/time_to_recall.py [--small] [--dataset DIR] [--settings default,fp32,bf16,compile,workers0]
           [--r1 40] [--epochs 10] [--iterations 160] [--bare-steps 3] [--threads 2] [--device auto]

Every run is the demo's training (`cosplace-xs demo`: ResNet-18 from random weights, every layer trained, 64 px,
batch and groups fitted to the city, validation after each epoch) on the synthetic city, changed only by its
setting: `default` is what `cosplace-xs train` does unasked (`--precision auto`, 2 workers, channels_last, no
compilation); the others change one option. The clock starts when `training.loop.train` is called (set-up, the
check of every image, each epoch's steps and validation, the compilation of `compile`; not the imports, which
benchmarks/startup.py measures) and stops at the end of the first validation that reaches `--r1`; the run then
stops. Without --small: the `small` city and the demo's 10 epochs of 160 batches, R@1 40 (the demo reaches 43.0
on its test set). With --small: the `tiny` city, 4 epochs of 20 batches, R@1 20.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import common
import model_throughput
import torch
import yaml

from cosplace_xs import checkpoints as ckpt
from cosplace_xs.cli.demo import demo_config
from cosplace_xs.config import RunConfig
from cosplace_xs.model.network import build_model
from cosplace_xs.training import loop, run_files

# one option changed from the defaults in each setting; `default` changes none
SETTINGS: dict[str, dict[str, Any]] = {
    "default": {},
    "fp32": {"train.precision": "fp32"},
    "bf16": {"train.precision": "bf16"},
    "compile": {"train.compile": True},
    "workers0": {"train.num_workers": 0},
    "workers4": {"train.num_workers": 4},
}
# (city preset, epochs, batches per epoch, R@1 to reach)
FULL = ("small", 10, 160, 40.0)
SMALL = ("tiny", 4, 20, 20.0)


class RecallReached(Exception):  # noqa: N818 (not an error: how a run stops once it has reached the R@1)
    """Raised when the epoch after the one that reached the R@1 would start (its checkpoint is then written)."""


@dataclass
class Validations:
    """Seconds since the run's start at the end of each validation, and its R@1."""

    start: float
    r1: float
    times: list[float] = field(default_factory=list)
    recalls: list[float] = field(default_factory=list)

    @property
    def reached(self) -> int | None:
        """The index of the first validation at or above `r1`, or None."""
        return next((i for i, value in enumerate(self.recalls) if value >= self.r1), None)


@contextlib.contextmanager
def watched_validation(validations: Validations) -> Iterator[None]:
    """Record each validation's time and R@1; stop the run before the epoch that follows the one reaching r1."""
    evaluate, build_loader = loop.evaluate_model, loop._loader

    def timed_evaluate(*args: Any, **kwargs: Any) -> Any:
        result = evaluate(*args, **kwargs)
        validations.times.append(time.perf_counter() - validations.start)
        validations.recalls.append(result.recalls[1])
        return result

    def stopping_loader(*args: Any, **kwargs: Any) -> Any:
        if validations.reached is not None:
            raise RecallReached
        return build_loader(*args, **kwargs)

    with mock.patch.object(loop, "evaluate_model", timed_evaluate), \
            mock.patch.object(loop, "_loader", stopping_loader):
        yield


def run_config(dataset: Path, setting: str, epochs: int, iterations: int, device: str,
               image_size: int | None = None) -> RunConfig:
    """The demo's options for the city in `dataset`, changed by `setting`."""
    given = {"train.epochs": epochs, "train.iterations_per_epoch": iterations, "train.device": device,
             **({"train.image_size": image_size} if image_size else {})}
    return demo_config(dataset, given).replace(SETTINGS[setting])


def time_to_recall(config: RunConfig, r1: float) -> dict[str, Any]:
    """Train in a temporary run folder until validation reaches `r1` (or the epochs end); the figures."""
    with tempfile.TemporaryDirectory(prefix="bench_recall_") as folder:
        run_dir = Path(folder)
        validations = Validations(time.perf_counter(), r1)
        with watched_validation(validations), contextlib.suppress(RecallReached):
            loop.train(config, run_dir, progress=False)
        wall = time.perf_counter() - validations.start
        history = ckpt.read_checkpoint(run_dir / ckpt.LAST)["history"]
        precision = yaml.safe_load((run_dir / run_files.CONFIG).read_text())["train"]["precision"]
    reached = validations.reached
    train_seconds = sum(row["train_seconds"] for row in history)
    images = config.train.batch_size * config.train.iterations_per_epoch * len(history)
    return {
        "precision": precision,  # what `auto` chose, as the run recorded it
        "r1_target": r1, "reached": reached is not None,
        "time_to_r1_s": None if reached is None else round(validations.times[reached], 1),
        "epochs_to_r1": None if reached is None else reached + 1,
        "val_r1": [round(value, 2) for value in validations.recalls],
        "wall_s": round(wall, 1), "train_s": round(train_seconds, 1),
        "val_s": round(sum(row.get("val_seconds") or 0.0 for row in history), 1),
        "images_per_s": round(images / train_seconds, 2),
    }


def bare_images_per_s(config: RunConfig, precision: str, device: torch.device, steps: int) -> float:
    """The bare training step (random tensors) of the run's model, batch, size, memory format and precision."""
    variant = model_throughput.Variant(config.train.channels_last, precision, compiled=config.train.compile)
    batch, size = config.train.batch_size, config.train.image_size
    generator = torch.Generator().manual_seed(0)
    model = build_model(config.model, progress=False).to(device)  # the run's: every layer trained in the demo
    images = torch.randn(batch, 3, size, size, generator=generator).to(device)
    labels = torch.randint(0, model_throughput.CLASSES_PER_GROUP, (batch,), generator=generator).to(device)
    if variant.channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    step = model_throughput.train_step(model, images, labels, variant, device)
    return round(batch / common.time_calls(step, device, repeats=steps, warmup=1 + variant.compiled).median, 2)


def run(dataset: Path, settings: list[str], epochs: int, iterations: int, r1: float, device: torch.device,
        bare_steps: int, image_size: int | None = None) -> list[dict[str, Any]]:
    """Each setting's run to `r1`, with the bare step of its precision."""
    records = []
    for setting in settings:
        config = run_config(dataset, setting, epochs, iterations, str(device), image_size)
        figures = time_to_recall(config, r1)
        bare = bare_images_per_s(config, figures["precision"], device, bare_steps)
        records.append({
            "setting": setting, "device": str(device), "threads": torch.get_num_threads(),
            "backbone": config.model.backbone, "size": config.train.image_size, "batch": config.train.batch_size,
            "iterations": config.train.iterations_per_epoch, "workers": config.train.num_workers,
            "channels_last": config.train.channels_last, "compiled": config.train.compile, **figures,
            "bare_images_per_s": bare, "ratio_to_bare": round(figures["images_per_s"] / bare, 3),
        })
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    common.add_dataset_args(parser, "train/ and val/")
    parser.add_argument("--small", action="store_true", help="the tiny city, 4 epochs of 20 batches, R@1 20")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, of {', '.join(SETTINGS)}")
    parser.add_argument("--r1", type=float, default=None, help="validation R@1 to reach (default: 40, --small 20)")
    parser.add_argument("--epochs", type=int, default=None, help="at most this many epochs (default 10, --small 4)")
    parser.add_argument("--iterations", type=int, default=None, help="batches per epoch (default 160, --small 20)")
    parser.add_argument("--size", type=int, default=None, help="training image size (default: the demo's, 64)")
    parser.add_argument("--bare-steps", type=int, default=3, help="timed steps of each bare measurement")
    args = parser.parse_args()
    preset, epochs, iterations, r1 = SMALL if args.small else FULL
    unknown = sorted(set(args.settings.split(",")) - set(SETTINGS))
    if unknown:
        parser.error(f"--settings: unknown {', '.join(unknown)}; choose from {', '.join(SETTINGS)}")
    device = common.setup(args.threads, args.device)
    common.emit("environment", common.environment(device))
    dataset = common.synthetic_city(args.dataset, args.city_preset if args.dataset else preset)
    records = run(dataset, args.settings.split(","), args.epochs or epochs, args.iterations or iterations,
                  r1 if args.r1 is None else args.r1, device, args.bare_steps, args.size)
    for record in records:
        reached = (f"R@1 {record['r1_target']:g} after {record['time_to_r1_s']:.0f} s ({record['epochs_to_r1']} "
                   "epochs)" if record["reached"] else f"R@1 {record['r1_target']:g} not reached in "
                   f"{record['wall_s']:.0f} s (val R@1 {record['val_r1']})")
        print(f"{record['setting']:>9} ({record['precision']}, {record['workers']} workers"
              f"{', compiled' if record['compiled'] else ''}): {reached}; steps {record['images_per_s']:.1f} img/s "
              f"= {100 * record['ratio_to_bare']:.0f}% of the bare step ({record['bare_images_per_s']:.1f})")
        common.emit("time_to_recall", record)


if __name__ == "__main__":
    main()
