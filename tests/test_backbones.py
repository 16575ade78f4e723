"""The backbone registry: names, channels C, the CosPlace cut and which layers are frozen (on the meta device)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision import models

from cosplace_xs.errors import ConfigError
from cosplace_xs.model.backbones import BACKBONES, PatchTokens, backbone_spec

EFFICIENTNETS = tuple(f"efficientnet_b{index}" for index in range(8))


def meta_backbone(name: str, train_all_layers: bool = False) -> nn.Sequential:
    spec = backbone_spec(name)
    with torch.device("meta"):  # shapes and flags only: no memory, no initialisation
        return spec.features(spec.constructor(), train_all_layers)


def test_registry_names_in_cli_order() -> None:
    assert tuple(BACKBONES) == ("resnet18", "resnet50", "resnet101", "resnet152", "vgg16", *EFFICIENTNETS,
                                "convnext_tiny", "convnext_small", "dinov2_vits14", "dinov2_vitb14")
    with pytest.raises(TypeError):
        BACKBONES["resnet34"] = BACKBONES["resnet18"]  # read-only


def test_unknown_backbone_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"--backbone='resnet34'.*resnet18, resnet50, resnet101, resnet152, vgg16, "
                                          r"efficientnet_b0, .*, dinov2_vitb14$"):
        backbone_spec("resnet34")


@pytest.mark.parametrize(("name", "weights", "file_name"), [
    ("resnet18", models.ResNet18_Weights.IMAGENET1K_V1, "resnet18-f37072fd.pth"),
    ("resnet50", models.ResNet50_Weights.IMAGENET1K_V2, "resnet50-11ad3fa6.pth"),
    ("vgg16", models.VGG16_Weights.IMAGENET1K_V1, "vgg16-397923af.pth"),
    ("efficientnet_b0", models.EfficientNet_B0_Weights.IMAGENET1K_V1, "efficientnet_b0_rwightman-7f5810bc.pth"),
    ("efficientnet_b1", models.EfficientNet_B1_Weights.IMAGENET1K_V2, "efficientnet_b1-c27df63c.pth"),
    ("efficientnet_b7", models.EfficientNet_B7_Weights.IMAGENET1K_V1, "efficientnet_b7_lukemelas-c5b4e57e.pth"),
    ("convnext_tiny", models.ConvNeXt_Tiny_Weights.IMAGENET1K_V1, "convnext_tiny-983f1562.pth"),
    ("convnext_small", models.ConvNeXt_Small_Weights.IMAGENET1K_V1, "convnext_small-0c510722.pth"),
])
def test_weights_are_what_cosplace_default_resolves_to(name, weights, file_name) -> None:
    spec = backbone_spec(name)
    assert spec.weights is weights and spec.weights_file == file_name


@pytest.mark.parametrize(("name", "channels", "spatial"), [
    ("resnet18", 512, 2), ("resnet50", 2048, 2), ("resnet101", 2048, 2), ("resnet152", 2048, 2),
    ("vgg16", 512, 4),  # stride 16: the last max-pool is cut
    ("efficientnet_b0", 1280, 2), ("convnext_tiny", 768, 2), ("convnext_small", 768, 2),
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


@pytest.mark.parametrize("name", ["resnet18", "vgg16", "efficientnet_b0", "convnext_tiny"])
def test_frozen_layers_are_exactly_the_early_ones(name) -> None:
    layers = meta_backbone(name)
    trainable = backbone_spec(name).trainable_layers
    for index, layer in enumerate(layers):
        flags = {p.requires_grad for p in layer.parameters()}
        assert flags <= {index >= len(layers) - trainable}, f"layer {index}"


# the CNNs of the paper, and one of each family added since (its members share the freezing code)
@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet101", "resnet152", "vgg16", "efficientnet_b0",
                                  "convnext_tiny", "dinov2_vits14"])
def test_train_all_layers_freezes_nothing(name) -> None:
    assert all(p.requires_grad for p in meta_backbone(name, train_all_layers=True).parameters())


def test_the_option_schema_lists_exactly_the_registrys_backbones() -> None:
    from cosplace_xs.config import BACKBONE_NAMES
    from cosplace_xs.model.backbones import BACKBONES

    assert tuple(BACKBONES) == BACKBONE_NAMES


# CosPlace's CHANNELS_NUM_IN_LAST_CONV; the forward pass is checked on B0 above, the others share its code
@pytest.mark.parametrize(("name", "channels"), list(zip(
    EFFICIENTNETS, (1280, 1280, 1408, 1536, 1792, 2048, 2304, 2560), strict=True)))
def test_efficientnet_has_cosplaces_channels_and_freezes_before_features_5(name, channels) -> None:
    layers = meta_backbone(name)
    assert len(layers) == 9 and layers[-1][0].out_channels == channels == backbone_spec(name).channels
    assert [any(p.requires_grad for p in layer.parameters()) for layer in layers] == [False] * 5 + [True] * 4


def test_convnext_trains_its_last_two_stages_with_their_downsampling() -> None:
    layers = meta_backbone("convnext_small")
    assert [type(layer).__name__ for layer in layers[4:]] == ["Sequential"] * 4
    assert [any(p.requires_grad for p in layer.parameters()) for layer in layers] == [False] * 4 + [True] * 4
    # ConvNeXt-Small's stage 3 holds 27 blocks, ConvNeXt-Tiny's 9
    assert (len(layers[5]), len(meta_backbone("convnext_tiny")[5])) == (27, 9)


@pytest.mark.parametrize(("name", "channels", "blocks"), [("dinov2_vits14", 384, 12), ("dinov2_vitb14", 768, 12)])
def test_dinov2_trains_its_last_4_blocks_and_final_norm(name, channels, blocks) -> None:
    backbone = meta_backbone(name)
    assert isinstance(backbone, PatchTokens) and backbone.vit.embed_dim == channels == backbone_spec(name).channels
    trainable = {key.split(".")[2] if key.startswith("vit.blocks") else key
                 for key, p in backbone.named_parameters() if p.requires_grad}
    assert trainable == {str(index) for index in range(blocks - 4, blocks)} | {"vit.norm.weight", "vit.norm.bias"}


def test_dinov2_gives_a_patch_map_and_the_cls_token() -> None:
    spec = backbone_spec("dinov2_vits14")
    assert spec.gives_tokens and not backbone_spec("resnet18").gives_tokens
    torch.manual_seed(0)
    backbone = spec.features(spec.constructor(), train_all_layers=False).eval()
    images = torch.randn(2, 3, 28, 42)
    with torch.no_grad():
        patches, cls = backbone(images)
        tokens = backbone.vit.forward_features(images)
    assert patches.shape == (2, 384, 2, 3) and cls.shape == (2, 384)
    # patch token (row 1, column 2) is token 1 + 1 * 3 + 2, after the CLS token
    torch.testing.assert_close(patches[:, :, 1, 2], tokens[:, 6])
    torch.testing.assert_close(cls, tokens[:, 0])


@pytest.mark.parametrize(("size", "seen"), [(224, 224), (32, 28), (36, 42), (7, 14), (518, 518)])
def test_vit_input_sides_round_to_the_nearest_multiple_of_14(size, seen) -> None:
    assert backbone_spec("dinov2_vits14").input_size(size) == seen
    assert backbone_spec("convnext_tiny").input_size(size) == size


def test_vit_resizes_other_sizes_and_logs_it_once(caplog) -> None:
    spec = backbone_spec("dinov2_vits14")
    with torch.device("meta"):
        backbone = spec.features(spec.constructor(), train_all_layers=False)
        with caplog.at_level("INFO", logger="cosplace_xs.model.backbones"):
            for _ in range(2):
                patches, _ = backbone(torch.empty(1, 3, 32, 60))
    assert patches.shape == (1, 384, 2, 4)
    assert caplog.messages == ["32 x 60 images are resized to 28 x 56, the nearest multiple of the ViT's 14-pixel "
                               "patch"]


def test_dinov2_weights_offline_are_a_clear_error(monkeypatch) -> None:
    import timm

    from cosplace_xs.errors import WeightsUnavailableError
    from cosplace_xs.model.weights import classifier_state_dict

    def offline(name: str, pretrained: bool = False, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(WeightsUnavailableError) as error:
        classifier_state_dict(backbone_spec("dinov2_vitb14"), "imagenet")
    assert str(error.value) == (
        "the pretrained weights of vit_base_patch14_dinov2 could not be had from the Hugging Face hub "
        "(timm/vit_base_patch14_dinov2.lvd142m): We couldn't connect to 'https://huggingface.co' to load the files. "
        "Either go online once so timm caches them (HF_HOME chooses the cache), or pass --pretrained PATH with a "
        "state dict of timm's vit_base_patch14_dinov2, or pass --no-pretrained to start from random weights")
