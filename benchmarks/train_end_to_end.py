"""End-to-end training images/s on the synthetic city, the share of time the model waits for data, peak memory.

Usage: python benchmarks/train_end_to_end.py [--dataset DIR] [--iterations 24] [--precisions fp32,bf16]
           [--compiled-precisions fp32] [--workers 2] [--batch 32] [--size 224] [--backbone resnet18]
           [--bare-steps 5] [--rounds 1] [--threads 2] [--device auto]

The training loop runs unchanged (`cosplace_xs.training.loop.train`, one epoch of `--iterations` batches, no
validation, no mid-epoch checkpoint, no pretrained weights). From outside, this script wraps the iterable that
`loop._loader` returns, to time each batch's wait in the DataLoader's `__next__` and the rest of its iteration
(the step: transfer, augmentation, forward, backward, optimizers, bookkeeping), and `BatchAugmentation.forward`,
to time the augmentation inside the step. Steady-state figures leave out the first batch (worker start-up and
first-call kernel selection), which is reported apart. Each run is compared with the bare training step of
`model_throughput.py` (random tensors, same model, batch, memory format and precision), measured just before
and just after the run (their mean; their difference shows how much the machine's speed drifted); with
`--rounds` several runs alternate with bare measurements and the run of median ratio is reported. With
`--compiled-precisions`, runs of `--compile` (the model under torch.compile) are compared with the compiled bare
step; their first batch, left out, holds the compilation.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import common
import model_throughput
import torch

from cosplace_xs.augment import BatchAugmentation
from cosplace_xs.config import RunConfig
from cosplace_xs.training import loop


@dataclass
class LoopTimes:
    """Per batch: seconds waiting in the loader's `__next__`, in the rest of the iteration, in augmentation."""

    waits: list[float] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    augments: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """Steady-state figures (first batch left out) and the first batch's wait and step."""
        waits, steps, augments = self.waits[1:], self.steps[1:], self.augments[1:]
        seconds = sum(waits) + sum(steps)
        return {
            "images_per_s": round(sum(self.batch_sizes[1:]) / seconds, 2),
            "wait_share": round(sum(waits) / seconds, 4),
            "augment_share": round(sum(augments) / seconds, 4),
            "wait_ms_per_batch": round(1000 * sum(waits) / len(waits), 1),
            "step_ms_per_batch": round(1000 * sum(steps) / len(steps), 1),
            "first_wait_s": round(self.waits[0], 3),
            "first_step_s": round(self.steps[0], 3),
        }


class TimedBatches:
    """The loader's batches, unchanged, with the time spent getting each one and using it recorded."""

    def __init__(self, loader: Iterable, times: LoopTimes) -> None:
        self.loader = loader
        self.times = times

    def __iter__(self) -> Iterator[Any]:
        start = time.perf_counter()
        iterator = iter(self.loader)  # workers start here: counted in the first wait
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            arrived = time.perf_counter()
            self.times.waits.append(arrived - start)
            self.times.batch_sizes.append(len(batch[1]))
            yield batch
            start = time.perf_counter()
            self.times.steps.append(start - arrived)


@contextlib.contextmanager
def instrumented_loop(times: LoopTimes) -> Iterator[None]:
    """Time the training loop's data wait and augmentation from outside, without changing what it does."""
    build_loader, augment = loop._loader, BatchAugmentation.forward

    def timed_loader(*args: Any, **kwargs: Any) -> TimedBatches:
        return TimedBatches(build_loader(*args, **kwargs), times)

    def timed_augment(self: BatchAugmentation, *args: Any, **kwargs: Any) -> torch.Tensor:
        start = time.perf_counter()  # CPU: exact; CUDA: launch time only (the loop does not synchronise here)
        result = augment(self, *args, **kwargs)
        times.augments.append(time.perf_counter() - start)
        return result

    with mock.patch.object(loop, "_loader", timed_loader), \
            mock.patch.object(BatchAugmentation, "forward", timed_augment):
        yield


def run_config(dataset: Path, iterations: int, precision: str, workers: int, batch: int, size: int,
               backbone: str, device: str, compiled: bool = False) -> RunConfig:
    """One epoch of `iterations` batches on the benchmarks' one group, nothing else (no validation, no mid-epoch
    checkpoint)."""
    return RunConfig().replace({
        "train.dataset": str(dataset), "train.epochs": 1, "train.iterations_per_epoch": iterations,
        "train.precision": precision, "train.num_workers": workers, "train.batch_size": batch,
        "train.image_size": size, "train.device": device, "train.validate": False, "train.checkpoint_every": 0,
        "train.compile": compiled,
        "model.backbone": backbone, "model.pretrained": "none", "split": common.BENCHMARK_SPLIT,
    })


def train_run(config: RunConfig) -> dict[str, Any]:
    """Train once in a temporary run folder; the loop's own figures and the instrumented ones."""
    times = LoopTimes()
    with tempfile.TemporaryDirectory(prefix="bench_run_") as run_dir, instrumented_loop(times):
        start = time.perf_counter()
        result = loop.train(config, Path(run_dir), progress=False)
        total = time.perf_counter() - start
    loop_seconds = sum(times.waits) + sum(times.steps)
    return {
        **times.summary(),
        "loop_reported_images_per_s": round(result.history[0]["images_per_s"], 2),
        "setup_and_epoch_end_s": round(total - loop_seconds, 2),
    }


def run(dataset: Path, iterations: int, precisions: list[str], workers: int, batch: int, size: int,
        backbone: str, device: torch.device, bare_steps: int, rounds: int = 1,
        compiled: bool = False) -> list[dict[str, Any]]:
    """Each precision end to end `rounds` times, between bare steps of the same model and settings."""
    records = []
    for precision in precisions:
        config = run_config(dataset, iterations, precision, workers, batch, size, backbone, str(device), compiled)
        variant = model_throughput.Variant(config.train.channels_last, precision, compiled=compiled)

        def bare(variant: model_throughput.Variant = variant) -> float:
            return batch / model_throughput.measure(backbone, size, batch, "train", variant, device, bare_steps).median

        figures = common.bracketed(bare, lambda config=config: train_run(config), rounds)
        records.append({
            "device": str(device), "threads": torch.get_num_threads(), "backbone": backbone, "size": size,
            "batch": batch, "iterations": iterations, "workers": workers, "precision": precision,
            "channels_last": config.train.channels_last, "compiled": compiled, **figures,
        })
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    common.add_dataset_args(parser, "train/")
    parser.add_argument("--iterations", type=int, default=24, help="batches per run (one epoch)")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16 (fp16 on CUDA)")
    parser.add_argument("--compiled-precisions", default="",
                        help="comma-separated precisions also run with --compile (e.g. fp32)")
    parser.add_argument("--workers", default="2", help="DataLoader workers, comma-separated (the training "
                        "default is 2)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--bare-steps", type=int, default=5, help="timed steps of each bare comparison")
    parser.add_argument("--rounds", type=int, default=1, help="runs per precision (the median ratio is reported)")
    args = parser.parse_args()
    if args.iterations < 2:
        parser.error("--iterations must be >= 2: the first batch (start-up) is left out of the figures")
    device = common.setup(args.threads, args.device)
    common.emit("environment", common.environment(device))
    dataset = common.synthetic_city(args.dataset, args.city_preset)
    settings = common.precision_settings(args.precisions, args.compiled_precisions)
    records = [record for workers in args.workers.split(",") for precisions, compiled in settings
               for record in run(dataset, args.iterations, precisions, int(workers), args.batch, args.size,
                                 args.backbone, device, args.bare_steps, args.rounds, compiled)]
    for record in records:
        compiled = " compiled" if record["compiled"] else ""
        print(f"end to end {record['backbone']} {record['size']}px {record['precision']}{compiled} workers "
              f"{record['workers']}: {record['images_per_s']:6.1f} img/s = {100 * record['ratio_to_bare']:.0f}% "
              f"of the bare step ({record['bare_images_per_s']:.1f}); waits for data "
              f"{100 * record['wait_share']:.1f}% of the time, augments {100 * record['augment_share']:.1f}%")
        common.emit("train_end_to_end", record)
    memory = common.peak_memory(device)
    print(f"peak memory of the training runs: {memory}")
    common.emit("train_memory", {"device": str(device), **memory})


if __name__ == "__main__":
    main()
