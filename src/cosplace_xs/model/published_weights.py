"""Weights of a whole network in the layout of the official CosPlace and EigenPlaces code.

Their `GeoLocalizationNet` and ours share one state dict layout: `backbone.<i>...` for the torchvision feature
layers kept (ResNet: conv1, bn1, relu, maxpool, layer1-4 at 0-7; VGG16: `features` without its last ReLU and
max-pool), `aggregation.1.p` for GeM's p and `aggregation.3.{weight,bias}` for the Linear(C, D) layer (L2Norm
and Flatten hold no weights). Their train.py saves `model.state_dict()` (best_model.pth, or the
`model_state_dict` of last_checkpoint.pth), their torch.hub releases are such state dicts
(`ResNet50_2048_cosplace.pth`, `ResNet18_512_eigenplaces.pth`, ...), and a model wrapped in DataParallel adds
`module.` to every key. The backbone and D are read from the tensors, never from the file name.
"""

from __future__ import annotations

import functools
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cosplace_xs.config import ModelConfig
from cosplace_xs.errors import ConfigError, WeightsUnavailableError
from cosplace_xs.model.network import GeoLocalizationNet
from cosplace_xs.model.state_keys import KeyDifferences, key_differences
from cosplace_xs.options import flag_of

OFFICIAL_AGGREGATION = "gem"  # the official networks' head: L2Norm, GeM, Flatten, Linear, L2Norm
FC_WEIGHT = "aggregation.3.weight"  # Linear(C, D): its shape (D, C) gives the descriptor size
DATA_PARALLEL_PREFIX = "module."
OFFICIAL_CHECKPOINT_KEY = "model_state_dict"  # the model's weights in the official last_checkpoint.pth
MAY_LACK = "num_batches_tracked"  # BatchNorm's batch counter: absent from files of older torch versions
# the backbones of the official releases (CosPlace's and EigenPlaces' hubconf.py), those a file is compared with
OFFICIAL_BACKBONES = ("resnet18", "resnet50", "resnet101", "resnet152", "vgg16")
# ResNet: blocks of layer3 (backbone.6) and whether they are bottlenecks (conv3) -> the registry's name
RESNET_BY_LAYER3 = {(2, False): "resnet18", (6, True): "resnet50", (23, True): "resnet101", (36, True): "resnet152"}
WHAT_WEIGHTS_ARE = (f"{flag_of(ModelConfig, 'weights')} takes the state dict of a whole CosPlace or EigenPlaces "
                    "network (keys backbone.0..., aggregation.1.p, aggregation.3.weight), as their train.py saves it "
                    "and their torch.hub releases hold it (e.g. ResNet18_512_cosplace.pth)")
_UNREADABLE = (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError)


@dataclass(frozen=True)
class PublishedWeights:
    """A checked state dict in the official layout, with the backbone and descriptor size D it holds."""

    path: Path
    backbone: str
    fc_output_dim: int
    state: dict[str, Tensor]

    def build(self) -> GeoLocalizationNet:
        """Our network of that backbone and D, holding these weights (on the CPU, in training mode)."""
        model = GeoLocalizationNet(self.backbone, self.fc_output_dim)
        # the layout was checked key by key: strict=False only lets the batch counters of older files be absent
        model.load_state_dict(self.state, strict=False)
        return model


def _load(path: Path) -> Any:
    if not path.is_file():
        raise WeightsUnavailableError(f"{flag_of(ModelConfig, 'weights')} {path}: no such file. {WHAT_WEIGHTS_ARE}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except _UNREADABLE as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsUnavailableError(f"{path}: cannot be read as a state dict ({reason}). {WHAT_WEIGHTS_ARE}") \
            from None


def _model_state(path: Path, loaded: Any) -> dict[str, Tensor]:
    """The network's tensors: from the official last_checkpoint.pth's model_state_dict, without DataParallel's
    `module.` prefix."""
    if isinstance(loaded, Mapping) and "model" in loaded and "config" in loaded:
        raise WeightsUnavailableError(f"{path}: is a cosplace-xs checkpoint, not a state dict in the official "
                                      "layout; pass it as --checkpoint")
    if isinstance(loaded, Mapping) and isinstance(loaded.get(OFFICIAL_CHECKPOINT_KEY), Mapping):
        loaded = loaded[OFFICIAL_CHECKPOINT_KEY]
    if not isinstance(loaded, Mapping) or not loaded or not all(
            isinstance(key, str) and isinstance(value, Tensor) for key, value in loaded.items()):
        raise WeightsUnavailableError(f"{path}: holds a {type(loaded).__name__}, not a state dict of tensors. "
                                      f"{WHAT_WEIGHTS_ARE}")
    if all(key.startswith(DATA_PARALLEL_PREFIX) for key in loaded):
        return {key.removeprefix(DATA_PARALLEL_PREFIX): value for key, value in loaded.items()}
    return dict(loaded)


def _structure_guess(state: Mapping[str, Tensor]) -> str | None:
    """The ResNet or VGG16 that the tensors' structure points to, without building any network."""
    if "backbone.28.weight" in state and "backbone.4.0.conv1.weight" not in state:
        return "vgg16"  # conv5_3 is features[28]: a ResNet's Sequential ends at index 7
    blocks = {match.group(1) for key in state if (match := re.match(r"backbone\.6\.(\d+)\.", key))}
    return RESNET_BY_LAYER3.get((len(blocks), "backbone.4.0.conv3.weight" in state))


def backbone_of_state(state: Mapping[str, Tensor], fc_output_dim: int) -> tuple[str, KeyDifferences]:
    """The official backbone whose network with descriptor size `fc_output_dim` fits `state` key by key and shape
    by shape (no differences), else the closest one and how `state` differs from it."""
    guess = _structure_guess(state)
    if guess is not None:  # the common case builds one network's structure, not five
        differences = _differences(state, guess, fc_output_dim)
        if not differences.count:
            return guess, differences
    return min(((name, _differences(state, name, fc_output_dim)) for name in OFFICIAL_BACKBONES),
               key=lambda item: item[1].count)


@functools.lru_cache(maxsize=16)
def _expected_state(backbone: str, fc_output_dim: int) -> dict[str, Tensor]:
    with torch.device("meta"):  # only the structure: no memory, no random initialisation
        return GeoLocalizationNet(backbone, fc_output_dim).state_dict()


def _differences(state: Mapping[str, Tensor], backbone: str, fc_output_dim: int) -> KeyDifferences:
    return key_differences(state, _expected_state(backbone, fc_output_dim), may_lack=MAY_LACK)


def _classifier_hint(state: Mapping[str, Tensor]) -> str:
    if "fc.weight" in state or "classifier.6.weight" in state:
        return ("; it looks like torchvision's ImageNet classification weights, which train takes as --pretrained "
                "FILE")
    return ""


def read_published_weights(path: str | Path) -> PublishedWeights:
    """The checked weights of `path`; a file that fits no known backbone is a WeightsUnavailableError naming the
    keys that did not fit the closest one."""
    path = Path(path).expanduser()
    state = _model_state(path, _load(path))
    fc = state.get(FC_WEIGHT)
    # the file's D, else the default D: the closest backbone then names the keys that do not fit
    fc_output_dim = int(fc.shape[0]) if fc is not None and fc.dim() == 2 else ModelConfig().fc_output_dim
    backbone, differences = backbone_of_state(state, fc_output_dim)
    if differences.count:
        raise WeightsUnavailableError(
            f"{path}: fits none of the official networks' backbones ({', '.join(OFFICIAL_BACKBONES)}); against "
            f"the closest, {backbone} with D={fc_output_dim}: {'; '.join(differences.describe())}"
            f"{_classifier_hint(state)}. "
            f"{WHAT_WEIGHTS_ARE}")
    non_finite = [key for key, value in state.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if non_finite:
        raise WeightsUnavailableError(
            f"{path}: holds NaN or infinite weights ({len(non_finite)} tensors, e.g. {', '.join(non_finite[:3])}); "
            "the run that saved it diverged: use another of its files")
    return PublishedWeights(path, backbone, fc_output_dim, state)


def load_starting_weights(model: GeoLocalizationNet, path: str | Path) -> None:
    """Copy the weights of `path` into `model` (training's starting point); a file of another backbone or D is a
    ConfigError that names the options that would fit it."""
    weights = read_published_weights(path)
    found = (weights.backbone, weights.fc_output_dim, OFFICIAL_AGGREGATION)
    if found != (model.backbone_name, model.fc_output_dim, model.aggregation_name):
        flags = [flag_of(ModelConfig, name) for name in ("backbone", "fc_output_dim", "aggregation")]
        raise ConfigError(
            f"{flag_of(ModelConfig, 'weights')} {weights.path}: holds a {weights.backbone} network with "
            f"D={weights.fc_output_dim} and GeM aggregation, and this run builds a {model.backbone_name} with "
            f"D={model.fc_output_dim} and {model.aggregation_name} aggregation; train with "
            + " ".join(f"{flag} {value}" for flag, value in zip(flags, found, strict=True)))
    model.load_state_dict(weights.state, strict=False)  # checked key by key above
