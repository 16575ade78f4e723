"""Optimizers of the paper's Table 3 for the model, and Adam for each group's CosFace classifier."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from cosplace_xs.config import OptimConfig


def build_model_optimizer(parameters: Iterable[nn.Parameter], config: OptimConfig) -> torch.optim.Optimizer:
    """Adam, AdamW, ASGD (with its lambda) or SGD (with momentum) at `lr` and `weight_decay`."""
    params = [p for p in parameters if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "asgd":
        return torch.optim.ASGD(params, lr=config.lr, lambd=config.asgd_lambda, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def build_classifier_optimizer(classifier: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    """CosPlace trains each group's classifier with Adam at `classifiers_lr`."""
    return torch.optim.Adam(classifier.parameters(), lr=config.classifiers_lr,
                            weight_decay=config.classifiers_weight_decay)


def move_classifier(classifier: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Move a group's classifier and its optimizer state, so they occupy the device only while in use.

    Reloading the state dict lets torch place each state tensor as its policy wants (Adam keeps `step` on
    the CPU, ASGD beside the parameter); moving every tensor by hand breaks the fused/foreach kernels.
    """
    classifier.to(device)
    optimizer.load_state_dict(optimizer.state_dict())
