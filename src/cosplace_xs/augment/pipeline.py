"""Batch augmentation of training images on their own device, with per-image random parameters.

Order: colour jitter (brightness, contrast, saturation, hue) -> random resized crop (crop_method
`resized_crop`, the default: torchvision's antialiased crop of each image, then any rotation; `warp`: crop and
rotation as one affine warp of the batch) -> flips -> cutout -> Gaussian noise -> ImageNet normalisation.
Colour jitter draws an order of its four ops per image by default, as torchvision's ColorJitter does;
`jitter_order="fixed"` keeps one order, so the batch is one set of tensor ops. For the warp, images larger
than it needs are first shrunk (antialiased, before the conversion to float, so uint8 batches are resized as
uint8), see `geometry.shrink_for_warp`. Random
parameters come from a CPU generator, so a seed gives the same parameters on every device; the Gaussian
noise itself is drawn on the images' device from a seed taken from that generator.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cosplace_xs.augment import color, geometry
from cosplace_xs.augment.occlusion import cutout
from cosplace_xs.augment.params import AugmentParams, sample_params
from cosplace_xs.config import AugmentConfig, TrainConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.options import flag_of

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """A float32 copy in [0, 1] of uint8 images (divided by 255) or of float images (taken as they are)."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    return images.to(torch.float32, copy=True)


def _stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return mean, std


def normalize(images: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation of uint8 or [0, 1] float images (B, 3, H, W) or (3, H, W), as float32."""
    images = to_float(images)
    mean, std = _stats(images)
    return images.sub_(mean.view(3, 1, 1)).div_(std.view(3, 1, 1))


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo `normalize`: back to [0, 1] (clamped), for display."""
    mean, std = _stats(images)
    return (images * std.view(3, 1, 1) + mean.view(3, 1, 1)).clamp_(0, 1)


def training_read_size(train: TrainConfig, augment: AugmentConfig) -> int | None:
    """The square side training images are read at before the augmentation: None (as stored) without
    `resize_before_crop`; with it, enough pixels for the smallest random crop to span the training size
    (`geometry.crop_source_side`), or the training size itself when there is no random crop."""
    if not train.resize_before_crop:
        return None
    if augment.random_resized_crop:
        return geometry.crop_source_side(train.image_size, augment.crop_scale_min)
    return train.image_size


def describe(config: AugmentConfig) -> str:
    """The active operations and their settings in one line, e.g. for a figure title or a log."""
    parts = []
    if config.color_jitter:
        parts.append(f"ColorJitter(b={config.brightness:g}, c={config.contrast:g}, s={config.saturation:g}, "
                     f"h={config.hue:g}{', random order' if config.jitter_order == 'random' else ''})")
    if config.random_resized_crop:
        parts.append(f"RandomResizedCrop(scale={config.crop_scale_min:g}-{config.crop_scale_max:g})")
    if config.rotation:
        parts.append(f"Rotation(±{config.rotation_degrees:g}°)")
    if config.horizontal_flip:
        parts.append("HorizontalFlip")
    if config.vertical_flip:
        parts.append("VerticalFlip")
    if config.cutout:
        parts.append(f"Cutout({config.cutout_size}px, p={config.cutout_p:g})")
    if config.gaussian_noise:
        parts.append(f"GaussianNoise(std={config.noise_std:g})")
    return ", ".join(parts) or "no augmentation"


class BatchAugmentation(nn.Module):
    """The training augmentation (`AugmentConfig`) of a whole batch at once, output `output_size` squared."""

    def __init__(self, config: AugmentConfig, output_size: int) -> None:
        super().__init__()
        if config.cutout and config.cutout_size > output_size:
            flag = flag_of(AugmentConfig, "cutout_size")
            raise ConfigError(f"option {flag}={config.cutout_size} is larger than the {output_size}-pixel "
                              f"training images; lower {flag} or raise {flag_of(TrainConfig, 'image_size')}")
        self.config = config
        self.output_size = output_size

    def forward(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment uint8 or [0, 1] float images (B, 3, H, W); float32 normalised (B, 3, S, S), same device."""
        height, width = images.shape[-2:]
        params = sample_params(self.config, images.shape[0], height, width, self.output_size, generator)
        return self.apply_params(images, params)

    def apply_params(self, images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """The augmentation with given parameters (as `sample_params` draws them)."""
        config, size = self.config, self.output_size
        height, width = images.shape[-2:]
        if config.crop_method == "resized_crop":
            return self._finish(self._resized_crop(images, params), params)
        warped = config.random_resized_crop or config.rotation
        if warped:
            # keep about `size` pixels across the smallest crop the sampler can draw
            side = size / math.sqrt(config.crop_scale_min) if config.random_resized_crop else size
            x = to_float(geometry.shrink_for_warp(images, math.ceil(side)))
        else:
            x = to_float(geometry.resize(images, size, size))
        if config.color_jitter:
            x = self._jitter(x, params)
        if warped:
            matrices = geometry.warp_matrices(params.boxes, params.angles, height, width)
            x = geometry.warp(x, matrices, size)
        return self._finish(x, params)

    def _resized_crop(self, images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """The official order: jitter the whole image, then RandomResizedCrop (antialiased), then any rotation
        as a warp of the resized crop."""
        config, size = self.config, self.output_size
        x = to_float(images)
        if config.color_jitter:
            x = self._jitter(x, params)
        if config.random_resized_crop:
            x = geometry.resized_crops(x, params.boxes, size)
        else:
            x = geometry.resize(x, size, size)
        if config.rotation:
            boxes = geometry.full_boxes(x.shape[0], size, size)
            x = geometry.warp(x, geometry.warp_matrices(boxes, params.angles, size, size), size)
        return x

    def _finish(self, x: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Flips, cutout, noise and normalisation of the cropped (B, 3, S, S) float batch."""
        config = self.config
        if config.horizontal_flip:
            x = geometry.flip(x, params.horizontal_flip, -1)
        if config.vertical_flip:
            x = geometry.flip(x, params.vertical_flip, -2)
        if config.cutout:
            x = cutout(x, params.cutout, params.cutout_top, params.cutout_left, config.cutout_size)
        if config.gaussian_noise and config.noise_std > 0:
            noise_generator = torch.Generator(device=x.device).manual_seed(params.noise_seed)
            noise = torch.randn(x.shape, generator=noise_generator, device=x.device, dtype=x.dtype)
            x = x.add_(noise, alpha=config.noise_std).clamp_(0, 1)
        mean, std = _stats(x)
        return x.sub_(mean).div_(std)

    def _jitter(self, x: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        config, device = self.config, x.device
        # an op whose factor range is a single neutral value is skipped: hue == 0 avoids the HSV round trip
        ops = [(strength > 0, adjust, values) for strength, adjust, values in (
            (config.brightness, color.adjust_brightness, params.brightness),
            (config.contrast, color.adjust_contrast, params.contrast),
            (config.saturation, color.adjust_saturation, params.saturation),
            (config.hue, color.adjust_hue, params.hue))]
        if params.jitter_orders is None:
            for enabled, adjust, values in ops:
                if enabled:
                    x = adjust(x, values.to(device))
            return x
        # a random order per image, as torchvision's ColorJitter: the images sharing an order are jittered together
        orders = params.jitter_orders
        for order in torch.unique(orders, dim=0):
            rows = (orders == order).all(dim=1).nonzero().flatten()
            part, on_device = x[rows.to(device)], rows.to(device)
            for op in order.tolist():
                enabled, adjust, values = ops[op]
                if enabled:
                    part = adjust(part, values[rows].to(device))
            x[on_device] = part
        return x
