"""A trained GeoLocalizationNet back from a checkpoint file or run folder, or from a state dict of the official
CosPlace or EigenPlaces network (`--weights`), ready for inference."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from cosplace_xs.checkpoints import (
    PREVIOUS,
    WHAT_A_CHECKPOINT_IS,
    non_finite_weights,
    read_checkpoint,
    resolve_checkpoint,
)
from cosplace_xs.config import OptimConfig, RunConfig
from cosplace_xs.errors import CheckpointError, ConfigError
from cosplace_xs.evaluation.pca import add_pca_layers
from cosplace_xs.model.compilation import compile_in_place
from cosplace_xs.model.network import GeoLocalizationNet, build_model, load_model_state
from cosplace_xs.model.published_weights import read_published_weights
from cosplace_xs.options import flag_of


def load_trained_model(checkpoint: str | Path, device: torch.device,
                       compiled: bool = False) -> tuple[GeoLocalizationNet, RunConfig]:
    """The model of a checkpoint (see `read_trained_model`) in eval mode on `device`, and the run's options.
    `compiled`: torch.compile the model in place (faster batches after a slow first one)."""
    model, config = read_trained_model(checkpoint)
    return place_model(model, config, device, compiled), config


def place_model(model: GeoLocalizationNet, config: RunConfig, device: torch.device,
                compiled: bool = False) -> GeoLocalizationNet:
    """`model` in eval mode on `device`, in the memory format its run trained in, compiled if asked."""
    model = model.to(device).eval()
    if config.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compiled:
        compile_in_place(model, device)
    return model


def read_trained_model(checkpoint: str | Path) -> tuple[GeoLocalizationNet, RunConfig]:
    """The model of a checkpoint (a run folder means its best.pt, else last.pt) on the CPU, and the run's
    options; weights that do not fit the options, or that are not finite, are a CheckpointError naming the
    file."""
    path = resolve_checkpoint(checkpoint)
    state = read_checkpoint(path)
    missing = [key for key in ("config", "model") if key not in state]
    if missing:
        raise CheckpointError(f"{path}: holds no {' and no '.join(missing)}; it is not a model checkpoint; "
                              f"{WHAT_A_CHECKPOINT_IS}")
    bad = non_finite_weights(state, classifiers=False)
    if bad:  # every descriptor would be NaN, and Recall@N a meaningless 0
        raise CheckpointError(
            f"{path}: holds NaN or infinite weights ({len(bad)} tensors, e.g. {', '.join(bad[:3])}); the run that "
            f"wrote it diverged. Use an earlier checkpoint of the run (e.g. {path.with_name(PREVIOUS)}), or train "
            f"again with a lower {flag_of(OptimConfig, 'lr')} or {flag_of(OptimConfig, 'classifiers_lr')}")
    try:
        config = RunConfig.from_dict(state["config"], source=f"{path} (its options)")
    except ConfigError as error:
        raise CheckpointError(f"{error}; the checkpoint was written by an incompatible version") from None
    # the checkpoint holds every weight: fetching ImageNet weights first would be wasted (or fail offline)
    model = build_model(dataclasses.replace(config.model, pretrained="none"))
    if config.model.pca_dim is not None:  # written by `cosplace-xs pca`: its last layers hold the PCA
        add_pca_layers(model, config.model.pca_dim)
    load_model_state(model, state["model"], str(path))
    return model, config


# the official evaluation's defaults: every test image at its own size (no --resize_test_imgs), after training at
# 512 x 512 pixels (their --image_size)
OFFICIAL_TRAIN_IMAGE_SIZE = 512
OFFICIAL_EVAL = {"native_size": True}


def read_published_model(weights: str | Path) -> tuple[GeoLocalizationNet, RunConfig]:
    """The network of an official state dict (see `model.published_weights`) on the CPU, and the options it stands
    for: its backbone and D, the official evaluation's image size (every image at its own size) and the default
    scoring options."""
    published = read_published_weights(weights)
    config = RunConfig.from_dict({
        "model": {"backbone": published.backbone, "fc_output_dim": published.fc_output_dim, "pretrained": "none"},
        "train": {"image_size": OFFICIAL_TRAIN_IMAGE_SIZE}, "eval": OFFICIAL_EVAL}, source=str(published.path))
    return published.build(), config
