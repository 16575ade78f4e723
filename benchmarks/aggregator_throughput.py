"""Train and inference images/s of each aggregation head at 224 px: model_throughput's step, head by head.

Usage: python benchmarks/aggregator_throughput.py [--small] [--variants fp32,channels_last_bf16] [--batch 32]
           [--steps 3] [--threads 2] [--device auto]

Every head of model/aggregators.py on ResNet-18 (SALAD, which needs tokens, on DINOv2 ViT-S/14, with GeM on the
same ViT beside it for comparison), D = 512, one batch of random images, the training step of the loop
(CosFace classifier, both optimizers) and a forward under inference mode; the median of `--steps` steps. For
the cost column of the README's aggregator table. `--small`: one step of each head, no warm-up, (without the
ViT's GeM reference) at 32 px (SALAD at 126 px, the least that gives it more patch tokens than clusters) with a
batch of 2, for the smoke test.
"""

from __future__ import annotations

import argparse

import common
import model_throughput
import torch

from cosplace_xs.config import ModelConfig
from cosplace_xs.model.network import build_model

# (backbone, aggregation): every head on the paper's smallest backbone, SALAD and its GeM reference on a ViT
SETTINGS = (("resnet18", "gem"), ("resnet18", "mixvpr"), ("resnet18", "netvlad"), ("dinov2_vits14", "gem"),
            ("dinov2_vits14", "salad"))
SMALL_SIZES = {"salad": 126}


def measure(backbone: str, aggregation: str, size: int, batch: int, mode: str, variant: model_throughput.Variant,
            device: torch.device, steps: int, warmup: int = 1) -> common.Timing:
    """Per-step seconds of a fresh model with this head on a fixed random batch."""
    generator = torch.Generator().manual_seed(0)
    model = build_model(ModelConfig(backbone=backbone, aggregation=aggregation, pretrained="none")).to(device)
    images = torch.randn(batch, 3, size, size, generator=generator).to(device)
    labels = torch.randint(0, model_throughput.CLASSES_PER_GROUP, (batch,), generator=generator).to(device)
    if variant.channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    step = model_throughput.train_step(model, images, labels, variant, device) if mode == "train" \
        else model_throughput.infer_step(model, images, variant, device)
    return common.time_calls(step, device, repeats=steps, warmup=warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    parser.add_argument("--small", action="store_true", help="one step of batch 2 at 32 px (SALAD: 126 px)")
    parser.add_argument("--variants", default="fp32")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per setting (the median is reported)")
    args = parser.parse_args()
    device = common.setup(args.threads, args.device)
    common.emit("environment", common.environment(device))
    batch, steps = (2, 1) if args.small else (args.batch, args.steps)
    settings = [s for s in SETTINGS if s != ("dinov2_vits14", "gem")] if args.small else SETTINGS
    for backbone, aggregation in settings:
        size = SMALL_SIZES.get(aggregation, 32) if args.small else 224
        for variant in map(model_throughput.Variant.parse, args.variants.split(",")):
            for mode in ("train", "infer"):
                timing = measure(backbone, aggregation, size, batch, mode, variant, device, steps,
                                 warmup=0 if args.small else 1)
                record = {"device": str(device), "threads": torch.get_num_threads(), "backbone": backbone,
                          "aggregation": aggregation, "size": size, "mode": mode, "variant": variant.name,
                          "batch": batch, "images_per_s": round(batch / timing.median, 2),
                          "step_s": round(timing.median, 4), "spread": round(timing.spread, 3)}
                print(f"{backbone:14s} {aggregation:8s} {size:4d}px {mode:5s} {variant.name:20s}: "
                      f"{record['images_per_s']:7.1f} img/s", flush=True)
                common.emit("aggregator_throughput", record)


if __name__ == "__main__":
    main()
