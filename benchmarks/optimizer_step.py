"""Milliseconds of one model-optimizer step over a backbone's trainable weights: fused kernels vs torch's default.

Usage: python benchmarks/optimizer_step.py [--backbones resnet18,resnet50,vgg16] [--optimizers adam,adamw,sgd]
           [--repeats 10] [--threads 2] [--device auto]
The optimizer is built as the training loop builds it (`build_model_optimizer`: fused kernels where torch has
them) and again with `fused=None` (torch's default implementation for the device: a loop over the parameters on
the CPU, `foreach` kernels on CUDA), over the trainable parameters of the CosPlace network with random gradients.
Alternating A/B rounds; the median step of each is reported. In the whole training step this saving is small
beside the model's forward and backward passes, so the step benchmarks alone cannot resolve it.
"""

from __future__ import annotations

import argparse
import statistics

import common
import model_throughput
import torch

from cosplace_xs.config import ModelConfig, OptimConfig
from cosplace_xs.model.network import build_model
from cosplace_xs.training.optim import build_model_optimizer

ROUNDS = 3


def step_ms(optimizer: torch.optim.Optimizer, device: torch.device, repeats: int) -> float:
    """Median milliseconds of `optimizer.step()` after two untimed steps (state allocation)."""
    timing = common.time_calls(optimizer.step, device, repeats=repeats, warmup=2)
    return 1000 * timing.median


def measure(backbone: str, optimizer_name: str, device: torch.device, repeats: int) -> dict[str, float]:
    """Fused and default step times of one optimizer over one backbone's trainable parameters."""
    model = build_model(ModelConfig(backbone=backbone, pretrained="none")).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    for param in params:
        param.grad = torch.randn_like(param)
    config = OptimConfig(optimizer=optimizer_name)
    fused_ms, default_ms = [], []
    for _ in range(ROUNDS):
        fused, default = build_model_optimizer(params, config), model_throughput.unfused(
            build_model_optimizer(params, config))
        fused_ms.append(step_ms(fused, device, repeats))
        default_ms.append(step_ms(default, device, repeats))
    return {"parameters_m": round(sum(p.numel() for p in params) / 1e6, 2),
            "fused_ms": round(statistics.median(fused_ms), 2), "default_ms": round(statistics.median(default_ms), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    parser.add_argument("--backbones", default="resnet18,resnet50,vgg16")
    parser.add_argument("--optimizers", default="adam", help="comma-separated: adam, adamw, sgd (ASGD has no "
                        "fused kernels)")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per round")
    args = parser.parse_args()
    device = common.setup(args.threads, args.device)
    common.emit("environment", common.environment(device))
    for backbone in args.backbones.split(","):
        for optimizer_name in args.optimizers.split(","):
            figures = measure(backbone, optimizer_name, device, args.repeats)
            print(f"{optimizer_name} step over {backbone}'s {figures['parameters_m']}M trainable parameters: "
                  f"fused {figures['fused_ms']:.1f} ms, default {figures['default_ms']:.1f} ms "
                  f"(x{figures['default_ms'] / figures['fused_ms']:.1f})")
            common.emit("optimizer_step", {"device": str(device), "threads": torch.get_num_threads(),
                                           "backbone": backbone, "optimizer": optimizer_name, **figures})


if __name__ == "__main__":
    main()
