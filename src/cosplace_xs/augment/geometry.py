"""RandomResizedCrop + rotation as one affine warp of the whole batch, and the resizes around it.

Coordinates follow `F.affine_grid` with `align_corners=False`: -1 and +1 are the outer edges of the
border pixels, so a crop box maps onto the output exactly as torchvision's `resized_crop` maps it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CROP_RATIO = (3 / 4, 4 / 3)  # torchvision RandomResizedCrop's default aspect-ratio range
CROP_TRIES = 10  # candidates per image before the centre-crop fallback, as in torchvision


def crop_source_side(output_size: int, scale_min: float) -> int:
    """The side of a square image whose smallest random crop (area `scale_min`, the narrowest aspect ratio)
    still spans `output_size` pixels: training images read at this size keep the detail that cropping them as
    stored keeps (1.63 x `output_size` at scale 0.5), at a cost bounded whatever their stored size."""
    return math.ceil(output_size / math.sqrt(scale_min * CROP_RATIO[0]))


def sample_crop_boxes(uniforms: torch.Tensor, height: int, width: int, scale: tuple[float, float],
                      ratio: tuple[float, float] = CROP_RATIO) -> torch.Tensor:
    """RandomResizedCrop.get_params for every image at once: boxes (B, 4) as (top, left, h, w) in pixels.

    `uniforms` is (B, 2 * CROP_TRIES + 2) in [0, 1): per image, CROP_TRIES area fractions, CROP_TRIES
    log-ratios and the two position draws. The first valid candidate wins; with none valid the box is
    torchvision's fallback, the largest centred crop whose aspect ratio lies within `ratio`.
    """
    uniforms = uniforms.to(torch.float64)
    area = height * width
    fractions = scale[0] + (scale[1] - scale[0]) * uniforms[:, :CROP_TRIES]
    log_ratio = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * uniforms[:, CROP_TRIES:2 * CROP_TRIES]
    aspect = torch.exp(log_ratio)
    w = torch.round(torch.sqrt(area * fractions * aspect))
    h = torch.round(torch.sqrt(area * fractions / aspect))
    valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = valid.to(torch.uint8).argmax(dim=1, keepdim=True)  # argmax returns the first maximum
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)
    position = uniforms[:, 2 * CROP_TRIES:]
    top = torch.floor(position[:, 0] * (height - h + 1))
    left = torch.floor(position[:, 1] * (width - w + 1))
    fallback_box = torch.tensor(_centre_crop(height, width, ratio), dtype=torch.float64)
    boxes = torch.stack((top, left, h, w), dim=1)
    return torch.where(valid.any(dim=1, keepdim=True), boxes, fallback_box)


def _centre_crop(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        w, h = round(height * max(ratio)), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def full_boxes(batch: int, height: int, width: int) -> torch.Tensor:
    """Boxes covering the whole image: no crop."""
    return torch.tensor([[0.0, 0.0, height, width]], dtype=torch.float64).expand(batch, 4)


def warp_matrices(boxes: torch.Tensor, angles_degrees: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """`affine_grid` matrices (B, 2, 3): rotate the square output about its centre, then map it into the box.

    The rotation is torchvision's `rotate` (positive angle = counter-clockwise), applied to the resized crop.
    """
    top, left, h, w = boxes.to(torch.float64).unbind(dim=1)
    scale_x, scale_y = w / width, h / height
    centre_x, centre_y = (2 * left + w) / width - 1, (2 * top + h) / height - 1
    radians = torch.deg2rad(angles_degrees.to(torch.float64))
    cos, sin = torch.cos(radians), torch.sin(radians)
    row_x = torch.stack((scale_x * cos, -scale_x * sin, centre_x), dim=1)
    row_y = torch.stack((scale_y * sin, scale_y * cos, centre_y), dim=1)
    return torch.stack((row_x, row_y), dim=1)


def affine_grid(matrices: torch.Tensor, size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """`F.affine_grid(matrices, [B, C, size, size], align_corners=False)`, built by broadcasting.

    An affine map is separable (x' = a x + b y + c), so two broadcast sums give the grid; affine_grid's
    batched matrix product over every pixel costs as much as the bilinear sampling itself on the CPU.
    """
    theta = matrices.to(device=device, dtype=dtype)
    centres = torch.arange(size, device=device, dtype=dtype).mul_(2).add_(1).div_(size).sub_(1)  # pixel centres
    grid = torch.empty(theta.shape[0], size, size, 2, device=device, dtype=dtype)
    for axis in (0, 1):
        a, b, c = (theta[:, axis, column].view(-1, 1, 1) for column in range(3))
        torch.add(a * centres.view(1, 1, size), b * centres.view(1, size, 1) + c, out=grid[..., axis])
    return grid


def warp(images: torch.Tensor, matrices: torch.Tensor, size: int) -> torch.Tensor:
    """One bilinear `grid_sample` for the batch; pixels from outside the image are 0 (black)."""
    grid = affine_grid(matrices, size, images.dtype, images.device)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def resize(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Antialiased bilinear resize as torchvision's `resize`, keeping the dtype; a no-op at the same size.

    uint8 stays uint8 (rounded): on the CPU PyTorch resizes uint8 natively, several times faster than float.
    """
    if tuple(images.shape[-2:]) == (height, width):
        return images
    native = images.is_floating_point() or images.device.type == "cpu"
    resized = F.interpolate(images if native else images.float(), size=(height, width), mode="bilinear",
                            align_corners=False, antialias=True)
    return resized if native else resized.round_().clamp_(0, 255).to(images.dtype)


def shrink_for_warp(images: torch.Tensor, side: int) -> torch.Tensor:
    """Downscale (antialiased, aspect kept) so that the shorter side is at most `side` pixels.

    `grid_sample` does not antialias: shrinking first bounds how much the warp itself minifies, and makes
    every later op cheaper. Crop boxes are drawn in the original pixels and warped in normalised
    coordinates, so the boxes do not change.
    """
    height, width = images.shape[-2:]
    factor = side / min(height, width)
    if factor >= 1:
        return images
    return resize(images, max(1, round(height * factor)), max(1, round(width * factor)))


def flip(images: torch.Tensor, chosen: torch.Tensor, dim: int) -> torch.Tensor:
    """Mirror the chosen images (bool (B,)) along `dim` (-1 horizontal, -2 vertical)."""
    return torch.where(chosen.to(images.device).view(-1, 1, 1, 1), images.flip(dim), images)


def resized_crops(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """torchvision's `resized_crop(image, top, left, h, w, [size, size], antialias=True)` of every image.

    The official CosPlace's crop (augmentations.py): each box is cut out and resized on its own, antialiased,
    so a crop larger than `size` is averaged down rather than point-sampled as `warp` samples it.
    """
    crops = []
    for image, (top, left, h, w) in zip(images, boxes.to(torch.int64).tolist(), strict=True):
        crop = image[None, :, top:top + h, left:left + w]
        crops.append(F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True))
    return torch.cat(crops)
