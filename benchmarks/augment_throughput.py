"""Images per second of the default batch augmentation vs a per-image torchvision.transforms.v2 loop.

Usage: python benchmarks/augment_throughput.py [--threads 2] [--batch 32] [--repeats 5] [--device cpu]
Prints one line per setting, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial

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
    step(images)  # warm-up: allocations, kernel selection
    if images.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        step(images)
    if images.device.type == "cuda":
        torch.cuda.synchronize()
    return len(images) * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output-size", type=int, default=224)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = AugmentConfig()
    results: dict[str, float | int | str] = {"threads": args.threads, "batch": args.batch, "device": str(device)}
    for input_size in (224, 512):
        images = torch.randint(0, 256, (args.batch, 3, input_size, input_size), dtype=torch.uint8,
                               generator=torch.Generator().manual_seed(0))
        batched = partial(BatchAugmentation(config, args.output_size), generator=torch.Generator().manual_seed(0))
        ours = images_per_second(batched, images.to(device), args.repeats)
        loop = per_image_pipeline(config, args.output_size, torch.Generator().manual_seed(0))
        theirs = images_per_second(loop, images, max(1, args.repeats // 2))
        key = f"{input_size}to{args.output_size}"
        results[f"batched_{key}"] = round(ours, 1)
        results[f"torchvision_loop_cpu_{key}"] = round(theirs, 1)
        print(f"{input_size} -> {args.output_size}: batched on {device} {ours:8.1f} img/s | "
              f"torchvision per-image loop on the CPU {theirs:8.1f} img/s | x{ours / theirs:.1f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
