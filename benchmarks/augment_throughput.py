"""Images per second of the default batch augmentation vs a per-image torchvision.transforms.v2 loop.

Usage: python benchmarks/augment_throughput.py [--threads 2] [--batch 32] [--repeats 5] [--output-size 224]
           [--input-sizes 224,512] [--device auto]
The batched augmentation (`BatchAugmentation`, the paper's Table 2 defaults) runs on the device; the per-image
loop (the same ops one image at a time, as a CPU data loader runs them) on the CPU at the same thread count.
Prints one line per input size, and its figures as one JSON line.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import common
import torch
from torchvision.transforms import v2

from cosplace_xs.augment import BatchAugmentation
from cosplace_xs.augment.pipeline import IMAGENET_MEAN, IMAGENET_STD
from cosplace_xs.config import AugmentConfig


def per_image_pipeline(config: AugmentConfig, size: int, generator: torch.Generator) -> Callable:
    """The same ops with torchvision, one image at a time (CPU augmentation in a data loader)."""
    transform = v2.Compose([
        v2.ToDtype(torch.float32, scale=True),
        v2.ColorJitter(config.brightness, config.contrast, config.saturation, config.hue),
        v2.RandomResizedCrop(size, scale=(config.crop_scale_min, config.crop_scale_max), antialias=True),
        v2.RandomRotation(config.rotation_degrees, interpolation=v2.InterpolationMode.BILINEAR),
    ])
    normalize = v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD))

    def run(images: torch.Tensor) -> torch.Tensor:
        outputs = []
        for image in images:
            image = transform(image)
            if float(torch.rand(1, generator=generator)) < config.cutout_p:
                top, left = torch.randint(0, size - config.cutout_size + 1, (2,), generator=generator).tolist()
                image[:, top:top + config.cutout_size, left:left + config.cutout_size] = 0
            outputs.append(normalize(image))
        return torch.stack(outputs)

    return run


def images_per_second(step: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, repeats: int) -> float:
    """Images/s of `step` on the batch over `repeats` calls, after one untimed call (allocations, kernels)."""
    step(images)
    common.synchronize(images.device)
    start = time.perf_counter()
    for _ in range(repeats):
        step(images)
    common.synchronize(images.device)
    return len(images) * repeats / (time.perf_counter() - start)


def run(batch: int, input_sizes: list[int], output_size: int, repeats: int, device: torch.device) -> list[dict]:
    """Batched and per-image images/s for each input size; one record each."""
    config = AugmentConfig()
    records = []
    for input_size in input_sizes:
        images = torch.randint(0, 256, (batch, 3, input_size, input_size), dtype=torch.uint8,
                               generator=torch.Generator().manual_seed(0))
        batched = partial(BatchAugmentation(config, output_size), generator=torch.Generator().manual_seed(0))
        ours = images_per_second(batched, images.to(device), repeats)
        loop = per_image_pipeline(config, output_size, torch.Generator().manual_seed(0))
        theirs = images_per_second(loop, images, max(1, repeats // 2))  # slow: fewer repeats
        records.append({"device": str(device), "threads": torch.get_num_threads(), "batch": batch,
                        "input_size": input_size, "output_size": output_size, "batched_images_per_s": round(ours, 1),
                        "per_image_cpu_images_per_s": round(theirs, 1), "speedup": round(ours / theirs, 2)})
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output-size", type=int, default=224)
    parser.add_argument("--input-sizes", default="224,512", help="sizes of the decoded images, comma-separated")
    args = parser.parse_args()
    device = common.setup(args.threads, args.device)
    common.emit("environment", common.environment(device))
    for record in run(args.batch, [int(s) for s in args.input_sizes.split(",")], args.output_size, args.repeats,
                      device):
        print(f"{record['input_size']} -> {record['output_size']}: batched on {device} "
              f"{record['batched_images_per_s']:8.1f} img/s | per-image loop on the CPU "
              f"{record['per_image_cpu_images_per_s']:8.1f} img/s | x{record['speedup']:.1f}", flush=True)
        common.emit("augment_throughput", record)


if __name__ == "__main__":
    main()
