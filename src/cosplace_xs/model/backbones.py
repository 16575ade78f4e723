"""Backbone registry: each name's constructor, pretrained weights, channels C, frozen layers and input-size rule.

As in CosPlace's `get_backbone`, a CNN backbone is the torchvision classifier cut to its last convolutional
features, kept as an `nn.Sequential` so that the state dict keys (`backbone.0.weight`, ...) match CosPlace's.
Freezing sets `requires_grad=False` and nothing else: CosPlace leaves the BatchNorm layers of the frozen
ResNet stages in training mode, so their running statistics keep adapting to the training images.
DINOv2 comes from timm (its weights through timm's own cache, the Hugging Face hub's): a ViT whose patch
tokens are laid out as a (B, C, H/14, W/14) map, so GeM and the other heads read it as a CNN's.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from types import MappingProxyType
from urllib.parse import urlparse

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import models
from torchvision.models import WeightsEnum

from cosplace_xs.config import ModelConfig
from cosplace_xs.errors import ConfigError, WeightsUnavailableError
from cosplace_xs.options import flag_of

log = logging.getLogger(__name__)

DINOV2_PATCH = 14
DINOV2_TRAINABLE_BLOCKS = 4  # as SALAD: the last 4 of the 12 blocks train, with the final norm


def resnet_layers(classifier: nn.Module) -> list[nn.Module]:
    """conv1 ... layer4 of a torchvision ResNet: its avgpool and fc dropped."""
    c = classifier
    return [c.conv1, c.bn1, c.relu, c.maxpool, c.layer1, c.layer2, c.layer3, c.layer4]


def vgg_layers(classifier: nn.Module) -> list[nn.Module]:
    """VGG `features` without its last ReLU and last max-pool: ends at conv5_3."""
    return list(classifier.features.children())[:-2]


def stage_layers(classifier: nn.Module) -> list[nn.Module]:
    """The children of an EfficientNet's or ConvNeXt's `features`: its avgpool and classifier dropped.

    The keys are `backbone.<i>...`, one level flatter than CosPlace's Sequential(features) (no CosPlace weights
    of these backbones are published, and the flat list is what freezing by stage needs)."""
    return list(classifier.features.children())


def vit_layers(vit: nn.Module) -> list[nn.Module | nn.Parameter]:
    """A timm ViT in order: CLS token, position embedding, patch embedding, blocks, final norm."""
    first = [p for p in (vit.cls_token, getattr(vit, "reg_token", None), vit.pos_embed) if p is not None]
    return [*first, vit.patch_embed, *vit.blocks, vit.norm]


def multiple_of(size: int, step: int) -> int:
    """`size` rounded to the nearest multiple of `step`, at least `step`."""
    return max(step, round(size / step) * step)


class PatchTokens(nn.Module):
    """A ViT's output as (patch map (B, C, H/p, W/p), CLS token (B, C)), after its last block and final norm.

    Images whose sides are not multiples of the patch p are resized (bilinear) to the nearest ones first, logged
    once per size: a ViT has no pooling that would absorb the remainder."""

    def __init__(self, vit: nn.Module, patch: int) -> None:
        super().__init__()
        self.vit = vit
        self.patch = patch
        self._logged_sizes: set[tuple[int, int]] = set()

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        height, width = images.shape[-2:]
        size = (multiple_of(height, self.patch), multiple_of(width, self.patch))
        if size != (height, width):
            if (height, width) not in self._logged_sizes:
                self._logged_sizes.add((height, width))
                log.info("%d x %d images are resized to %d x %d, the nearest multiple of the ViT's %d-pixel patch",
                         height, width, *size, self.patch)
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        tokens = self.vit.forward_features(images)
        prefix = self.vit.num_prefix_tokens
        patches = tokens[:, prefix:].transpose(1, 2).reshape(len(images), -1, size[0] // self.patch,
                                                             size[1] // self.patch)
        return patches, tokens[:, 0]


def timm_vit(name: str) -> nn.Module:
    """timm's ViT `name` with random weights, no classifier, any input size (the position embedding is
    interpolated to the patch grid)."""
    import timm  # imported on use: a second or more that the ResNets do not need

    return timm.create_model(name, pretrained=False, num_classes=0, dynamic_img_size=True)


def timm_weights(name: str, hub_id: str, progress: bool) -> dict[str, Tensor]:
    """The pretrained weights of timm's `name`, through timm's own cache (the Hugging Face hub's): downloaded
    once, then read offline."""
    import timm

    log.info("%s starts from the weights of %s (timm, cached by the Hugging Face hub)", name, hub_id)
    try:
        return timm.create_model(name, pretrained=True, num_classes=0, dynamic_img_size=True).state_dict()
    except (OSError, RuntimeError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsUnavailableError(
            f"the pretrained weights of {name} could not be had from the Hugging Face hub ({hub_id}): {reason}. "
            "Either go online once so timm caches them (HF_HOME chooses the cache), or pass --pretrained PATH with "
            f"a state dict of timm's {name}, or pass --no-pretrained to start from random weights"
        ) from None


@dataclass(frozen=True)
class BackboneSpec:
    """What the model needs to know about one backbone."""

    name: str
    constructor: Callable[..., nn.Module]  # the library's classification model, built with random weights
    weights: WeightsEnum | None  # its ImageNet weights in torchvision's weights API; None for timm's
    channels: int  # C: channels of the last feature map, the input of GeM and of Linear(C, D)
    feature_layers: Callable[[nn.Module], list[nn.Module]]
    trainable_layers: int  # how many of the last feature layers train by default; the earlier ones are frozen
    patch: int = 1  # a ViT's patch: input sides are rounded to its multiples (CNNs take any side >= 32)
    # weights from the library's own cache (timm); None: torchvision's, through torch.hub's cache (weights.py)
    library_weights: Callable[[bool], dict[str, Tensor]] | None = None

    @property
    def gives_tokens(self) -> bool:
        """A ViT: its features are (patch map, CLS token), which SALAD reads both of."""
        return self.patch > 1

    @property
    def weights_file(self) -> str:
        """The weights' file name in torch.hub's cache, e.g. resnet18-f37072fd.pth."""
        assert self.weights is not None, f"{self.name}'s weights come from its library's cache"
        return PurePosixPath(urlparse(self.weights.url).path).name

    def input_size(self, size: int) -> int:
        """The side the backbone sees for an image side of `size` pixels."""
        return size if self.patch == 1 else multiple_of(size, self.patch)

    def features(self, classifier: nn.Module, train_all_layers: bool) -> nn.Module:
        """The feature layers of `classifier` (sharing its parameters), all but the last few frozen by default."""
        layers = self.feature_layers(classifier)
        if not train_all_layers:
            for layer in layers[: -self.trainable_layers]:
                layer.requires_grad_(False)
        if self.patch > 1:
            return PatchTokens(classifier, self.patch)
        return nn.Sequential(*layers)


def efficientnet(index: int, channels: int) -> BackboneSpec:
    """EfficientNet-B<index> as CosPlace builds it: the blocks before features[5] frozen, features 5-8 train.

    Weights and channels are CosPlace's: `DEFAULT` of torchvision's weights API, its CHANNELS_NUM_IN_LAST_CONV."""
    name = f"efficientnet_b{index}"
    return BackboneSpec(name, getattr(models, name), models.get_model_weights(name).DEFAULT, channels,
                        stage_layers, 4)


def dinov2(name: str, timm_name: str, channels: int) -> BackboneSpec:
    """DINOv2 ViT with patch 14 (Oquab et al. 2023) from timm, its LVD-142M weights; the last blocks train."""
    hub_id = f"timm/{timm_name}.lvd142m"
    return BackboneSpec(name, functools.partial(timm_vit, timm_name), None, channels, vit_layers,
                        DINOV2_TRAINABLE_BLOCKS + 1, patch=DINOV2_PATCH,
                        library_weights=functools.partial(timm_weights, timm_name, hub_id))


BACKBONES: Mapping[str, BackboneSpec] = MappingProxyType({spec.name: spec for spec in (
    # ResNets train layer3 and layer4; conv1, bn1, layer1 and layer2 are frozen (relu and maxpool hold no weights).
    # Weights: what CosPlace's `weights=DEFAULT` resolves to (V2 for ResNet-50 and deeper, V1 otherwise).
    BackboneSpec("resnet18", models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1, 512, resnet_layers, 2),
    BackboneSpec("resnet50", models.resnet50, models.ResNet50_Weights.IMAGENET1K_V2, 2048, resnet_layers, 2),
    BackboneSpec("resnet101", models.resnet101, models.ResNet101_Weights.IMAGENET1K_V2, 2048, resnet_layers, 2),
    BackboneSpec("resnet152", models.resnet152, models.ResNet152_Weights.IMAGENET1K_V2, 2048, resnet_layers, 2),
    # VGG16 trains conv5_1, conv5_2, conv5_3 (the last 5 layers, with their ReLUs)
    BackboneSpec("vgg16", models.vgg16, models.VGG16_Weights.IMAGENET1K_V1, 512, vgg_layers, 5),
    *(efficientnet(index, channels) for index, channels in enumerate((1280, 1280, 1408, 1536, 1792, 2048, 2304, 2560))),
    # ConvNeXt trains its last two stages with their downsampling layers (features 4-7), as the ResNets do
    BackboneSpec("convnext_tiny", models.convnext_tiny, models.ConvNeXt_Tiny_Weights.IMAGENET1K_V1, 768,
                 stage_layers, 4),
    BackboneSpec("convnext_small", models.convnext_small, models.ConvNeXt_Small_Weights.IMAGENET1K_V1, 768,
                 stage_layers, 4),
    dinov2("dinov2_vits14", "vit_small_patch14_dinov2", 384),
    dinov2("dinov2_vitb14", "vit_base_patch14_dinov2", 768),
)})


def backbone_spec(name: str) -> BackboneSpec:
    """The registry entry of `name`; an unknown name is a ConfigError listing the known ones."""
    if name not in BACKBONES:
        raise ConfigError(f"option {flag_of(ModelConfig, 'backbone')}={name!r} is not a known backbone; choose one of "
                          f"{', '.join(BACKBONES)}")
    return BACKBONES[name]
