"""Backbone registry: each name's torchvision constructor, ImageNet weights, channels C and frozen layers.

As in CosPlace's `get_backbone`, a backbone is the torchvision classifier cut to its last convolutional
features, kept as an `nn.Sequential` so that the state dict keys (`backbone.0.weight`, ...) match CosPlace's.
Freezing sets `requires_grad=False` and nothing else: CosPlace leaves the BatchNorm layers of the frozen
ResNet stages in training mode, so their running statistics keep adapting to the training images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from types import MappingProxyType
from urllib.parse import urlparse

from torch import nn
from torchvision import models
from torchvision.models import WeightsEnum

from cosplace_xs.config import ModelConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.options import flag_of


def resnet_layers(classifier: nn.Module) -> list[nn.Module]:
    """conv1 ... layer4 of a torchvision ResNet: its avgpool and fc dropped."""
    c = classifier
    return [c.conv1, c.bn1, c.relu, c.maxpool, c.layer1, c.layer2, c.layer3, c.layer4]


def vgg_layers(classifier: nn.Module) -> list[nn.Module]:
    """VGG `features` without its last ReLU and last max-pool: ends at conv5_3."""
    return list(classifier.features.children())[:-2]


@dataclass(frozen=True)
class BackboneSpec:
    """What the model needs to know about one backbone."""

    name: str
    constructor: Callable[..., nn.Module]  # torchvision classification model, built with random weights
    weights: WeightsEnum  # its ImageNet weights in torchvision's weights API
    channels: int  # C: channels of the last convolution, the input of GeM and of Linear(C, D)
    feature_layers: Callable[[nn.Module], list[nn.Module]]
    trainable_layers: int  # how many of the last feature layers train by default; the earlier ones are frozen

    @property
    def weights_file(self) -> str:
        """The weights' file name in torch.hub's cache, e.g. resnet18-f37072fd.pth."""
        return PurePosixPath(urlparse(self.weights.url).path).name

    def features(self, classifier: nn.Module, train_all_layers: bool) -> nn.Sequential:
        """The feature layers of `classifier` (sharing its parameters), all but the last few frozen by default."""
        layers = self.feature_layers(classifier)
        if not train_all_layers:
            for layer in layers[: -self.trainable_layers]:
                layer.requires_grad_(False)
        return nn.Sequential(*layers)


BACKBONES: Mapping[str, BackboneSpec] = MappingProxyType({spec.name: spec for spec in (
    # ResNets train layer3 and layer4; conv1, bn1, layer1 and layer2 are frozen (relu and maxpool hold no weights).
    # Weights: what CosPlace's `weights=DEFAULT` resolves to (V2 for ResNet-50 and deeper, V1 otherwise).
    BackboneSpec("resnet18", models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1, 512, resnet_layers, 2),
    BackboneSpec("resnet50", models.resnet50, models.ResNet50_Weights.IMAGENET1K_V2, 2048, resnet_layers, 2),
    BackboneSpec("resnet101", models.resnet101, models.ResNet101_Weights.IMAGENET1K_V2, 2048, resnet_layers, 2),
    BackboneSpec("resnet152", models.resnet152, models.ResNet152_Weights.IMAGENET1K_V2, 2048, resnet_layers, 2),
    # VGG16 trains conv5_1, conv5_2, conv5_3 (the last 5 layers, with their ReLUs)
    BackboneSpec("vgg16", models.vgg16, models.VGG16_Weights.IMAGENET1K_V1, 512, vgg_layers, 5),
)})


def backbone_spec(name: str) -> BackboneSpec:
    """The registry entry of `name`; an unknown name is a ConfigError listing the known ones."""
    if name not in BACKBONES:
        raise ConfigError(f"option {flag_of(ModelConfig, 'backbone')}={name!r} is not a known backbone; choose one of "
                          f"{', '.join(BACKBONES)}")
    return BACKBONES[name]
