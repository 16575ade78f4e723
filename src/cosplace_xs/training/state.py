"""Everything a run needs to continue exactly: model, every group's classifier and optimizer, progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cosplace_xs.config import RunConfig
from cosplace_xs.errors import CheckpointError
from cosplace_xs.model.cosface import CosFace
from cosplace_xs.model.margins import margin_classifier
from cosplace_xs.model.network import GeoLocalizationNet, load_model_state
from cosplace_xs.training.optim import build_classifier_optimizer, build_model_optimizer


@dataclass
class TrainingState:
    """The mutable state of a training run; `epoch`/`iteration` name the next batch to train."""

    model: GeoLocalizationNet
    model_optimizer: torch.optim.Optimizer
    classifiers: list[CosFace]  # or a subclass: ArcFace, SphereFace (model/margins.py)
    classifier_optimizers: list[torch.optim.Optimizer]
    scaler: torch.amp.GradScaler
    epoch: int = 0
    iteration: int = 0
    best_r1: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    # the finished steps' share of the current epoch's metrics row: kept only for an exact mid-epoch resume
    epoch_loss_sum: float = 0.0
    epoch_images: int = 0
    epoch_seconds: float = 0.0


def new_state(model: GeoLocalizationNet, classes_per_group: list[int], config: RunConfig,
              device: torch.device) -> TrainingState:
    """Fresh optimizers and one margin classifier (CosFace unless --loss says otherwise) per group, kept on the
    CPU until its epoch."""
    classifiers = [margin_classifier(config.loss, config.model.fc_output_dim, n) for n in classes_per_group]
    return TrainingState(
        model=model,
        model_optimizer=build_model_optimizer(model.parameters(), config.optim),
        classifiers=classifiers,
        classifier_optimizers=[build_classifier_optimizer(c, config.optim) for c in classifiers],
        scaler=torch.amp.GradScaler(device.type, enabled=device.type == "cuda"),
    )


def restore(state: TrainingState, checkpoint: dict[str, Any], split_key: str, source: Path) -> None:
    """Load a checkpoint (the dict `loop.train` writes to last.pt) into a freshly built state; a checkpoint of
    another split or model is an error."""
    if checkpoint.get("split_key") != split_key:
        raise CheckpointError(
            f"{source}: was trained on another class/group split (the images or the split options changed); "
            "start a new run instead of resuming"
        )
    if len(checkpoint["classifiers"]) != len(state.classifiers):
        raise CheckpointError(f"{source}: holds {len(checkpoint['classifiers'])} group classifiers, "
                              f"the run needs {len(state.classifiers)}")
    load_model_state(state.model, checkpoint["model"], str(source))
    state.model_optimizer.load_state_dict(checkpoint["model_optimizer"])
    for classifier, optimizer, weights, optim_state in zip(
        state.classifiers, state.classifier_optimizers, checkpoint["classifiers"],
        checkpoint["classifier_optimizers"], strict=True,
    ):
        classifier.load_state_dict(weights)
        optimizer.load_state_dict(optim_state)
    state.scaler.load_state_dict(checkpoint["scaler"])
    for name in ("epoch", "iteration", "best_r1", "history", "epoch_loss_sum", "epoch_images", "epoch_seconds"):
        setattr(state, name, checkpoint[name])
