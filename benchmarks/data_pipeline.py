"""The data pipeline alone: images/s from disk through decoding, resizing and batch augmentation into batches.

Usage: python benchmarks/data_pipeline.py [--dataset DIR] [--size 224] [--batch 32] [--batches 16]
           [--workers 0,1,2] [--threads 2] [--device auto]

Three figures, each on the training images of the dataset (the synthetic city by default):
- decode: one process, one thread, decode + resize to `--size` of each image, per decoder: the library's
  `read_image` (torchvision.io) and a PIL prototype that asks libjpeg for a DCT-domain downscale (`Image.draft`)
  before the antialiased resize;
- loader: the training `GroupBatches` through a DataLoader built as the training loop builds it, per number
  of workers (images/s after the first batch; the first batch's wait, worker start-up included, apart);
- pipeline: the loader followed by `BatchAugmentation` on the device, as the training loop runs them by default
  (images read for the crop, `training_read_size`);
- crop: the pipeline with the most workers asked for and the torchvision decoder, for each way of reading and
  cropping (`CROPS`): images read at `--size`, at the size that keeps the smallest crop's pixels (the default),
  or as stored (`--no-resize-before-crop`), augmented by the batched warp of the paper's recipe or by the
  official pipeline's ops (the default): what each choice of docs/fidelity.md costs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import common
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from cosplace_xs.augment import BatchAugmentation, training_read_size
from cosplace_xs.config import AugmentConfig, SplitConfig, TrainConfig
from cosplace_xs.data import train_set
from cosplace_xs.data.images import read_image
from cosplace_xs.data.layout import discover_dataset, require_train_dir
from cosplace_xs.data.split import build_split
from cosplace_xs.data.train_set import GroupBatches
from cosplace_xs.data.workers import start_worker

Decoder = Callable[..., torch.Tensor]  # (path, size[, max_pixels]), as `read_image`


def read_image_pil_draft(path: str | Path, size: int, max_pixels: int | None = None) -> torch.Tensor:
    """Prototype decoder: PIL with a JPEG draft (libjpeg scales by 1/2, 1/4 or 1/8 while decoding, never below
    `size`), then the same antialiased resize as `read_image`. It measures speed only: `max_pixels`, which
    `GroupBatches` passes, is not checked."""
    with Image.open(path) as image:
        image.draft("RGB", (size, size))
        tensor = TF.pil_to_tensor(image.convert("RGB"))
    if tuple(tensor.shape[-2:]) != (size, size):
        tensor = TF.resize(tensor, [size, size], antialias=True)
    return tensor


DECODERS: dict[str, Decoder] = {"torchvision": read_image, "pil_draft": read_image_pil_draft}


@contextlib.contextmanager
def training_decoder(decoder: Decoder) -> Iterator[None]:
    """Make `GroupBatches` decode with `decoder` (in forked workers too), to measure a candidate in place."""
    with mock.patch.object(train_set, "read_image", decoder):
        yield


def decode_rate(paths: list[Path], decoder: Decoder, size: int) -> float:
    """Images/s of decode + resize in this process, at the current thread count."""
    for path in paths[:4]:
        decoder(path, size)  # warm-up: library initialisation
    start = time.perf_counter()
    for path in paths:
        decoder(path, size)
    return len(paths) / (time.perf_counter() - start)


def training_loader(batches: Dataset, num_batches: int, workers: int, device: torch.device) -> DataLoader:
    """A DataLoader with the settings of `training.loop._loader` (on the CPU, workers at the lowest priority)."""
    yielding = workers > 0 and device.type == "cpu"
    return DataLoader(batches, batch_size=None, sampler=range(num_batches), num_workers=workers,
                      pin_memory=device.type == "cuda", prefetch_factor=4 if workers else None,
                      persistent_workers=False, worker_init_fn=functools.partial(start_worker, yielding))


def pipeline_rate(loader: DataLoader, device: torch.device,
                  augment: BatchAugmentation | None = None) -> dict[str, float]:
    """Images/s through `loader` (and `augment` on `device`) after the first batch, and the first batch's wait."""
    start = time.perf_counter()
    first_batch_s, images = 0.0, 0
    for index, (batch, _labels) in enumerate(loader):
        batch = batch.to(device, non_blocking=True)
        if augment is not None:
            batch = augment(batch, torch.Generator().manual_seed(index))
        common.synchronize(device)
        if index == 0:
            first_batch_s = time.perf_counter() - start
            start = time.perf_counter()
        else:
            images += len(batch)
    seconds = time.perf_counter() - start
    return {"images_per_s": round(images / seconds, 1), "first_batch_s": round(first_batch_s, 3)}


def group_batches(dataset: Path, batch: int, read_size: int | None) -> GroupBatches:
    """Batches as an epoch trains them, from the benchmarks' split (one group of every class), the images read
    at `read_size` (None: as stored)."""
    split = build_split(require_train_dir(discover_dataset(dataset)), SplitConfig(**common.BENCHMARK_SPLIT))
    group = split.group(0)
    return GroupBatches(split, group, min(batch, len(group.class_ids)), read_size, seed=0, epoch=0)


# the augmentation before the official pipeline became the default: the paper's recipe in one batched warp
WARP_OPS = {"crop_method": "warp", "jitter_order": "fixed", "rotation": True, "cutout": True}
# label: (how the images are read: at --size, for the crop, or as stored; augmentation options); the default, the
# official ops on images read for the crop, is the `pipeline` stage
CROPS: dict[str, tuple[str, dict]] = {
    "warp, read at --size (until now)": ("size", WARP_OPS),
    "warp, read for the crop": ("crop", WARP_OPS),
    "official ops, read at --size": ("size", {}),
    "official ops, as stored (official)": ("stored", {}),
}


def crop_records(dataset: Path, size: int, batch: int, num_batches: int, workers: int, device: torch.device,
                 threads: int, source: dict) -> list[dict]:
    """The pipeline's images/s for each of `CROPS`."""
    records = []
    for label, (read, options) in CROPS.items():
        config = AugmentConfig(**options)
        read_size = {"size": size, "crop": training_read_size(TrainConfig(image_size=size), config),
                     "stored": None}[read]
        batches = group_batches(dataset, batch, read_size)
        figures = pipeline_rate(training_loader(batches, num_batches, workers, device), device,
                                BatchAugmentation(config, size))
        records.append({"stage": "crop", "crop": label, "read_size": read_size, "decoder": "torchvision",
                        "workers": workers, "threads": threads, "batch": batches.batch_size, "device": str(device),
                        **figures, **source})
    return records


def run(dataset: Path, size: int, batch: int, num_batches: int, workers_counts: list[int],
        device: torch.device, threads: int) -> list[dict]:
    """Every figure of the module docstring; one record each."""
    records = []
    batches = group_batches(dataset, batch, training_read_size(TrainConfig(image_size=size), AugmentConfig()))
    batch = batches.batch_size
    paths = list(batches.paths[: batch * num_batches])
    source = {"dataset": str(dataset), "native_size": list(read_image(paths[0]).shape[-2:]), "size": size}
    torch.set_num_threads(1)
    for name, decoder in DECODERS.items():
        rate = decode_rate(paths, decoder, size)
        records.append({"stage": "decode", "decoder": name, "workers": 0, "threads": 1,
                        "images_per_s": round(rate, 1), **source})
    torch.set_num_threads(threads)
    augment = BatchAugmentation(AugmentConfig(), size)
    for decoder_name in DECODERS:
        with training_decoder(DECODERS[decoder_name]):
            for workers in workers_counts:
                for stage, stage_augment in (("loader", None), ("pipeline", augment)):
                    loader = training_loader(batches, num_batches, workers, device)
                    figures = pipeline_rate(loader, device, stage_augment)
                    records.append({"stage": stage, "decoder": decoder_name, "workers": workers,
                                    "threads": threads, "batch": batch, "device": str(device), **figures, **source})
    return records + crop_records(dataset, size, batch, num_batches, max(workers_counts), device, threads, source)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    common.add_dataset_args(parser, "train/")
    parser.add_argument("--size", type=int, default=224, help="training image size")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=16, help="batches per measurement")
    parser.add_argument("--workers", default="0,1,2")
    args = parser.parse_args()
    device = common.setup(args.threads, args.device)
    common.emit("environment", common.environment(device))
    dataset = common.synthetic_city(args.dataset, args.city_preset)
    records = run(dataset, args.size, args.batch, args.batches, [int(w) for w in args.workers.split(",")],
                  device, args.threads)
    for record in records:
        print(f"{record['stage']:8s} {record.get('crop', record['decoder']):38s} workers {record['workers']} "
              f"{record['native_size'][0]}->{record['size']}px: {record['images_per_s']:8.1f} img/s"
              + (f" (first batch after {record['first_batch_s']:.2f} s)" if "first_batch_s" in record else ""))
        common.emit("data_pipeline", record)


if __name__ == "__main__":
    main()
