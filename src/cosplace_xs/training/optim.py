"""Optimizers of the paper's Table 3 for the model, and Adam for each group's CosFace classifier."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from cosplace_xs.config import OptimConfig

# fused kernels update every parameter in one pass instead of one pass per operation: Adam over ResNet-18's
# trainable 10.8M parameters takes 6 ms a step instead of 32 ms on 2 CPU cores (benchmarks/optimizer_step.py);
# ASGD has none
FUSED_DEVICES = ("cpu", "cuda")


def _fused(params: list[nn.Parameter]) -> bool:
    return bool(params) and all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in params)


def build_model_optimizer(parameters: Iterable[nn.Parameter], config: OptimConfig) -> torch.optim.Optimizer:
    """Adam, AdamW, ASGD (with its lambda) or SGD (with momentum) at `lr` and `weight_decay`, fused where torch
    has the kernels."""
    params = [p for p in parameters if p.requires_grad]
    fused = _fused(params)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    if config.optimizer == "asgd":
        return torch.optim.ASGD(params, lr=config.lr, lambd=config.asgd_lambda, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                           fused=fused)


def build_classifier_optimizer(classifier: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    """CosPlace trains each group's classifier with Adam at `classifiers_lr` (fused, as the model's)."""
    params = list(classifier.parameters())
    return torch.optim.Adam(params, lr=config.classifiers_lr, weight_decay=config.classifiers_weight_decay,
                            fused=_fused(params))


def move_classifier(classifier: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Move a group's classifier and its optimizer state, so they occupy the device only while in use.

    Reloading the state dict lets torch place each state tensor as its policy wants (Adam keeps `step` on
    the CPU, ASGD beside the parameter); moving every tensor by hand breaks the fused/foreach kernels.
    """
    classifier.to(device)
    optimizer.load_state_dict(optimizer.state_dict())
