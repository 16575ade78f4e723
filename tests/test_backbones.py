"""The backbone registry: names, channels C, the CosPlace cut and which layers are frozen (on the meta device)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision import models

from cosplace_xs.errors import ConfigError
from cosplace_xs.model.backbones import BACKBONES, backbone_spec


def meta_backbone(name: str, train_all_layers: bool = False) -> nn.Sequential:
    spec = backbone_spec(name)
    with torch.device("meta"):  # shapes and flags only: no memory, no initialisation
        return spec.features(spec.constructor(), train_all_layers)


def test_registry_names_in_cli_order() -> None:
    assert tuple(BACKBONES) == ("resnet18", "resnet50", "resnet101", "resnet152", "vgg16")
    with pytest.raises(TypeError):
        BACKBONES["resnet34"] = BACKBONES["resnet18"]  # read-only


def test_unknown_backbone_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"--backbone='resnet34'.*resnet18, resnet50, resnet101, resnet152, vgg16"):
        backbone_spec("resnet34")


@pytest.mark.parametrize(("name", "weights", "file_name"), [
    ("resnet18", models.ResNet18_Weights.IMAGENET1K_V1, "resnet18-f37072fd.pth"),
    ("resnet50", models.ResNet50_Weights.IMAGENET1K_V2, "resnet50-11ad3fa6.pth"),
    ("vgg16", models.VGG16_Weights.IMAGENET1K_V1, "vgg16-397923af.pth"),
])
def test_weights_are_what_cosplace_default_resolves_to(name, weights, file_name) -> None:
    spec = backbone_spec(name)
    assert spec.weights is weights and spec.weights_file == file_name


@pytest.mark.parametrize(("name", "channels", "spatial"), [
    ("resnet18", 512, 2), ("resnet50", 2048, 2), ("resnet101", 2048, 2), ("resnet152", 2048, 2),
    ("vgg16", 512, 4),  # stride 16: the last max-pool is cut
])
def test_features_have_c_channels_at_stride_32_or_16(name, channels, spatial) -> None:
    assert backbone_spec(name).channels == channels
    features = meta_backbone(name)(torch.empty(1, 3, 64, 64, device="meta"))
    assert features.shape == (1, channels, spatial, spatial)


def test_resnet_cut_drops_avgpool_and_fc() -> None:
    layers = meta_backbone("resnet18")
    assert [type(m).__name__ for m in layers[:4]] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    assert len(layers) == 8 and not any(isinstance(m, (nn.AdaptiveAvgPool2d, nn.Linear)) for m in layers.modules())


def test_vgg_cut_ends_at_conv5_3() -> None:
    layers = meta_backbone("vgg16")
    assert len(layers) == 29 and isinstance(layers[-1], nn.Conv2d)
    assert sum(isinstance(m, nn.MaxPool2d) for m in layers) == 4


# frozen parameter tensors and elements by hand: ResNet conv1 + bn1 (3 tensors), then per block 2 (basic) or
# 3 (bottleneck) convs with their BatchNorms, plus conv + BatchNorm of the first block's downsample in layer2
# (and in layer1 of the bottleneck ResNets); VGG16 conv1_1 ... conv4_3, weight and bias each.
@pytest.mark.parametrize(("name", "frozen_tensors", "frozen_elements"), [
    ("resnet18", 3 + 2 * 6 + (2 * 6 + 3), 9408 + 128 + 2 * (2 * 36864 + 256) + 230144 + 295424),
    ("resnet50", 3 + (3 * 9 + 3) + (4 * 9 + 3), 1444928),
    ("resnet101", 3 + (3 * 9 + 3) + (4 * 9 + 3), 1444928),  # depth differs from resnet50 in layer3 only
    ("resnet152", 3 + (3 * 9 + 3) + (8 * 9 + 3), 2565184),
    ("vgg16", 2 * 10, 1792 + 36928 + 73856 + 147584 + 295168 + 2 * 590080 + 1180160 + 2 * 2359808),
])
def test_layers_before_layer3_or_conv5_are_frozen(name, frozen_tensors, frozen_elements) -> None:
    frozen = [p for p in meta_backbone(name).parameters() if not p.requires_grad]
    assert len(frozen) == frozen_tensors
    assert sum(p.numel() for p in frozen) == frozen_elements


@pytest.mark.parametrize("name", ["resnet18", "vgg16"])
def test_frozen_layers_are_exactly_the_early_ones(name) -> None:
    layers = meta_backbone(name)
    trainable = backbone_spec(name).trainable_layers
    for index, layer in enumerate(layers):
        flags = {p.requires_grad for p in layer.parameters()}
        assert flags <= {index >= len(layers) - trainable}, f"layer {index}"


@pytest.mark.parametrize("name", list(BACKBONES))
def test_train_all_layers_freezes_nothing(name) -> None:
    assert all(p.requires_grad for p in meta_backbone(name, train_all_layers=True).parameters())


def test_the_option_schema_lists_exactly_the_registrys_backbones() -> None:
    from cosplace_xs.config import BACKBONE_NAMES
    from cosplace_xs.model.backbones import BACKBONES

    assert tuple(BACKBONES) == BACKBONE_NAMES
