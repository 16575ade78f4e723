"""Per-image random parameters of the batch augmentation, drawn on the CPU from one generator."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cosplace_xs.augment.geometry import CROP_TRIES, full_boxes, sample_crop_boxes
from cosplace_xs.config import AugmentConfig

# Columns of the one (B, DRAWS) uniform draw: row b holds everything image b gets, so an image's parameters
# do not depend on the batch size, and switching one op off leaves the others' parameters unchanged.
JITTER = slice(0, 4)
CROP = slice(4, 4 + 2 * CROP_TRIES + 2)
ANGLE = CROP.stop
FLIPS = slice(ANGLE + 1, ANGLE + 3)
CUTOUT = slice(FLIPS.stop, FLIPS.stop + 3)
DRAWS = CUTOUT.stop


@dataclass
class AugmentParams:
    """What each image of a batch gets; ops switched off get neutral values (factor 1, angle 0, ...)."""

    brightness: torch.Tensor  # (B,) factors
    contrast: torch.Tensor
    saturation: torch.Tensor
    hue: torch.Tensor  # (B,) shifts in [-0.5, 0.5]
    boxes: torch.Tensor  # (B, 4) crop boxes (top, left, h, w) in input pixels
    angles: torch.Tensor  # (B,) degrees, counter-clockwise
    horizontal_flip: torch.Tensor  # (B,) bool
    vertical_flip: torch.Tensor
    cutout: torch.Tensor  # (B,) bool: whether the image gets a cutout square
    cutout_top: torch.Tensor  # (B,) long, in output pixels
    cutout_left: torch.Tensor
    noise_seed: int  # seeds the Gaussian noise, drawn where the images are
    jitter_orders: torch.Tensor | None = None  # (B, 4) long, each row a permutation of the four jitter ops;
    # None: the fixed order brightness, contrast, saturation, hue


def _factor(uniform: torch.Tensor, strength: float, enabled: bool) -> torch.Tensor:
    # ColorJitter's range for brightness, contrast and saturation: U[max(0, 1 - b), 1 + b]
    if not enabled:
        return torch.ones_like(uniform, dtype=torch.float32)
    low, high = max(0.0, 1.0 - strength), 1.0 + strength
    return (low + (high - low) * uniform).to(torch.float32)


def sample_params(config: AugmentConfig, batch: int, height: int, width: int, output_size: int,
                  generator: torch.Generator) -> AugmentParams:
    """Draw every image's parameters for input images of `height` x `width` warped to `output_size`."""
    uniforms = torch.rand((batch, DRAWS), dtype=torch.float64, generator=generator)
    noise_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    # drawn after every other parameter, and only when asked, so that the fixed order draws what it always did
    orders = (torch.rand((batch, 4), generator=generator).argsort(dim=1)
              if config.color_jitter and config.jitter_order == "random" else None)
    jitter = uniforms[:, JITTER]
    colour = config.color_jitter
    hue = (2 * jitter[:, 3] - 1) * config.hue if colour else torch.zeros(batch, dtype=torch.float64)
    if config.random_resized_crop:
        boxes = sample_crop_boxes(uniforms[:, CROP], height, width, (config.crop_scale_min, config.crop_scale_max))
    else:
        boxes = full_boxes(batch, height, width)
    degrees = config.rotation_degrees if config.rotation else 0.0
    flips = uniforms[:, FLIPS] < 0.5
    cutout = uniforms[:, CUTOUT]
    positions = output_size - config.cutout_size + 1
    return AugmentParams(
        brightness=_factor(jitter[:, 0], config.brightness, colour),
        contrast=_factor(jitter[:, 1], config.contrast, colour),
        saturation=_factor(jitter[:, 2], config.saturation, colour),
        hue=hue.to(torch.float32),
        boxes=boxes,
        angles=(2 * uniforms[:, ANGLE] - 1) * degrees,
        horizontal_flip=flips[:, 0] & config.horizontal_flip,
        vertical_flip=flips[:, 1] & config.vertical_flip,
        cutout=(cutout[:, 0] < config.cutout_p) & config.cutout,
        cutout_top=torch.floor(cutout[:, 1] * positions).long(),
        cutout_left=torch.floor(cutout[:, 2] * positions).long(),
        noise_seed=noise_seed,
        jitter_orders=orders,
    )
