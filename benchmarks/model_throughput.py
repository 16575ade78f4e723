"""Model step throughput on random tensors: training (forward + backward + optimizers) and inference images/s.

Usage: python benchmarks/model_throughput.py [--backbones resnet18,resnet50,vgg16] [--sizes 224,512]
           [--variants fp32,channels_last,channels_last_bf16,channels_last_bf16_unfused] [--modes train,infer]
           [--batch 32] [--steps 3] [--compile] [--ceiling-sizes 1024,2048,4096] [--threads 2] [--device auto]

The training step is CosPlace's: the network as `build_model` makes it (layers before layer3 frozen), a CosFace
classifier of one group, both optimizers as the training loop builds them, `loss.item()` as the loop reads it.
Inference is a forward pass under `torch.inference_mode`. FLOPs per image are counted once per backbone, size and
mode with `torch.utils.flop_counter.FlopCounterMode` (2 FLOPs per multiply-add; what runs, so frozen layers
count no weight gradients); the achieved FLOP/s is compared with the matmul ceiling of the variant's precision.
`--batch` is the batch of ResNet-18 at 224 px; heavier settings get a batch scaled down by their FLOPs per
image (at least 4), so that every setting takes about the same time per step. The training loop's optimizers use
fused kernels; an `_unfused` variant builds them without (torch's per-parameter loop on the CPU), to show what the
fused kernels gain (training only). `--compile` adds torch.compile variants for the first backbone at the first
size.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import common
import matmul_ceiling
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from cosplace_xs.config import ModelConfig, OptimConfig
from cosplace_xs.device import autocast
from cosplace_xs.model.cosface import CosFace
from cosplace_xs.model.network import build_model
from cosplace_xs.training.optim import build_classifier_optimizer, build_model_optimizer

DESCRIPTOR_DIM = ModelConfig().fc_output_dim
CLASSES_PER_GROUP = 1000  # the order of an SF-XS group's classes; the classifier's cost is negligible anyway
REFERENCE = ("resnet18", 224)
MIN_BATCH = 4


@dataclass(frozen=True)
class Variant:
    """How the same step is run: memory format, autocast precision, optimizer kernels, compiled or eager."""

    channels_last: bool
    precision: str  # fp32, bf16 or fp16 (autocast)
    compiled: bool = False
    unfused: bool = False  # the optimizers without their fused kernels (one pass per operation and parameter)

    @property
    def name(self) -> str:
        parts = ["channels_last" if self.channels_last else "", "" if self.precision == "fp32" else self.precision,
                 "unfused" if self.unfused else "", "compile" if self.compiled else ""]
        return "_".join(p for p in parts if p) or "fp32"

    @classmethod
    def parse(cls, name: str) -> Variant:
        """fp32, bf16, channels_last, channels_last_bf16, channels_last_fp16, each optionally followed by
        _unfused, then _compile."""
        tokens = name.split("_")
        precision = "bf16" if "bf16" in tokens else "fp16" if "fp16" in tokens else "fp32"
        variant = cls(name.startswith("channels_last"), precision, compiled="compile" in tokens,
                      unfused="unfused" in tokens)
        if variant.name != name:
            raise ValueError(f"unknown variant {name!r}; e.g. fp32, channels_last, channels_last_bf16_compile")
        return variant


def new_model(backbone: str) -> nn.Module:
    return build_model(ModelConfig(backbone=backbone, fc_output_dim=DESCRIPTOR_DIM, pretrained="none"))


def conv_backward_flops(grad_out_shape: list[int], x_shape: list[int], w_shape: list[int], *args: Any,
                        out_shape: Any = None, **kwargs: Any) -> int:
    """FLOPs of a convolution's backward: each gradient asked for (input, weight) costs what the forward does.
    torch's own formula counts a grouped convolution's weight gradient `groups` times over, which made the
    depthwise convolutions of EfficientNet and ConvNeXt count 30 times their forward."""
    transposed, output_mask = args[4], args[7]
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def flops_per_image(backbone: str, size: int, mode: str) -> float:
    """FLOPs of one image's forward (infer) or forward + backward (train), counted on the meta device (over two
    images: BatchNorm in training mode refuses a single value per channel, as a 1 x 1 feature map of one image)."""
    model = new_model(backbone).to("meta")
    classifier = CosFace(DESCRIPTOR_DIM, CLASSES_PER_GROUP, s=30.0, m=0.4).to("meta")
    images = torch.empty(2, 3, size, size, device="meta")
    labels = torch.zeros(2, dtype=torch.long, device="meta")
    counter = FlopCounterMode(
        display=False, custom_mapping={torch.ops.aten.convolution_backward: conv_backward_flops})
    with counter:
        if mode == "infer":
            with torch.no_grad():
                model.eval()(images)
        else:
            loss = F.cross_entropy(classifier(model.train()(images), labels), labels)
            loss.backward()
    return counter.get_total_flops() / 2


def unfused(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The same optimizer switched to torch's default implementation for the device (each step reads the flag)."""
    for group in optimizer.param_groups:
        group["fused"] = None
    return optimizer


def train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, variant: Variant,
               device: torch.device) -> Callable[[], float]:
    """One CosPlace training step as the loop runs it (augmentation and data excluded)."""
    classifier = CosFace(DESCRIPTOR_DIM, CLASSES_PER_GROUP, s=30.0, m=0.4).to(device)
    model_optimizer = build_model_optimizer(model.parameters(), OptimConfig())
    classifier_optimizer = build_classifier_optimizer(classifier, OptimConfig())
    if variant.unfused:
        model_optimizer, classifier_optimizer = unfused(model_optimizer), unfused(classifier_optimizer)
    scaler = torch.amp.GradScaler(device.type, enabled=variant.precision == "fp16")
    forward = torch.compile(model) if variant.compiled else model
    model.train()

    def step() -> float:
        model_optimizer.zero_grad(set_to_none=True)
        classifier_optimizer.zero_grad(set_to_none=True)
        with autocast(device, variant.precision):
            loss = F.cross_entropy(classifier(forward(images).float(), labels), labels)
        value = loss.item()
        scaler.scale(loss).backward()
        scaler.step(model_optimizer)
        scaler.step(classifier_optimizer)
        scaler.update()
        return value

    return step


def infer_step(model: nn.Module, images: torch.Tensor, variant: Variant,
               device: torch.device) -> Callable[[], torch.Tensor]:
    """Descriptors of a batch, as evaluation extracts them."""
    forward = torch.compile(model) if variant.compiled else model
    model.eval()

    def step() -> torch.Tensor:
        with torch.inference_mode(), autocast(device, variant.precision):
            return forward(images)

    return step


def measure(backbone: str, size: int, batch: int, mode: str, variant: Variant, device: torch.device,
            steps: int, warmup: int = 1) -> common.Timing:
    """Per-step seconds of a fresh model on a fixed random batch."""
    generator = torch.Generator().manual_seed(0)
    model = new_model(backbone).to(device)
    images = torch.randn(batch, 3, size, size, generator=generator).to(device)
    labels = torch.randint(0, CLASSES_PER_GROUP, (batch,), generator=generator).to(device)
    if variant.channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    step = train_step(model, images, labels, variant, device) if mode == "train" \
        else infer_step(model, images, variant, device)
    return common.time_calls(step, device, repeats=steps, warmup=warmup + variant.compiled)


def scaled_batch(reference_batch: int, reference_flops: float, flops: float) -> int:
    """The reference batch shrunk in proportion to FLOPs per image, even, at least MIN_BATCH (or the reference
    batch when that is smaller)."""
    batch = reference_batch * reference_flops / flops
    return max(min(MIN_BATCH, reference_batch), min(reference_batch, 2 * round(batch / 2)))


def run(backbones: list[str], sizes: list[int], variants: list[Variant], modes: list[str], batch: int,
        steps: int, device: torch.device, ceilings: dict[str, float]) -> list[dict]:
    """Measure every setting; one record per setting."""
    records = []
    reference = {mode: flops_per_image(*REFERENCE, mode) for mode in modes}
    for backbone in backbones:
        for size in sizes:
            for mode in modes:
                flops = flops_per_image(backbone, size, mode)
                setting_batch = scaled_batch(batch, reference[mode], flops)
                for variant in variants:
                    if variant.unfused and mode == "infer":
                        continue  # no optimizer in inference: the same step as without
                    timing = measure(backbone, size, setting_batch, mode, variant, device, steps)
                    images_per_s = setting_batch / timing.median
                    ceiling = ceilings.get(variant.precision, ceilings["fp32"])
                    record = {
                        "device": str(device), "threads": torch.get_num_threads(), "backbone": backbone,
                        "size": size, "mode": mode, "variant": variant.name, "batch": setting_batch,
                        "images_per_s": round(images_per_s, 2), "step_s": round(timing.median, 4),
                        "spread": round(timing.spread, 3), "warmup_s": round(timing.warmup_seconds, 2),
                        "gflop_per_image": round(flops / 1e9, 3),
                        "achieved_gflops": round(images_per_s * flops / 1e9, 1),
                        "ceiling_ratio": round(images_per_s * flops / ceiling, 3),
                    }
                    print(f"{backbone:9s} {size:4d}px {mode:5s} {variant.name:26s} batch {setting_batch:3d}: "
                          f"{images_per_s:7.1f} img/s  {record['achieved_gflops']:7.1f} GFLOP/s "
                          f"({100 * record['ceiling_ratio']:4.1f}% of {variant.precision} ceiling)", flush=True)
                    common.emit("model_throughput", record)
                    records.append(record)
    return records


def default_variants(device: torch.device) -> list[str]:
    half = ["channels_last_fp16", "channels_last_bf16"] if device.type == "cuda" else ["channels_last_bf16"]
    return ["fp32", "channels_last", *half, f"{half[-1]}_unfused"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    parser.add_argument("--backbones", default="resnet18,resnet50,vgg16")
    parser.add_argument("--sizes", default="224,512")
    parser.add_argument("--variants", default=None, help="comma-separated; default fp32, channels_last, "
                        "channels_last with bf16 (and fp16 on CUDA) autocast, and bf16 with unfused optimizers")
    parser.add_argument("--modes", default="train,infer")
    parser.add_argument("--batch", type=int, default=32, help="batch of ResNet-18 at 224 px (scaled for others)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per setting (the median is reported)")
    parser.add_argument("--compile", action="store_true", help="add torch.compile variants (first backbone "
                        "and size only)")
    parser.add_argument("--ceiling-sizes", default=",".join(map(str, matmul_ceiling.SIZES)),
                        help="matrix sides of the matmul ceiling the FLOP/s are compared with")
    args = parser.parse_args()
    device = common.setup(args.threads, args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    common.emit("environment", common.environment(device))
    ceiling_sizes = tuple(int(n) for n in args.ceiling_sizes.split(","))
    ceilings = {precision: best for precision, (best, _, _) in
                matmul_ceiling.ceilings(device, ceiling_sizes, seconds=0.6).items()}
    variants = [Variant.parse(v) for v in (args.variants.split(",") if args.variants else default_variants(device))]
    backbones, sizes, modes = args.backbones.split(","), [int(s) for s in args.sizes.split(",")], \
        args.modes.split(",")
    run(backbones, sizes, variants, modes, args.batch, args.steps, device, ceilings)
    if args.compile:
        compiled = [dataclasses.replace(v, compiled=True) for v in variants
                    if v.channels_last and not v.compiled and not v.unfused]
        run(backbones[:1], sizes[:1], compiled, modes, args.batch, args.steps, device, ceilings)
    common.emit("model_throughput_memory", {"device": str(device), **common.peak_memory(device)})


if __name__ == "__main__":
    main()
