"""Colour jitter on a batch, each image with its own factors, as torchvision's ColorJitter defines them.

Images are float (B, 3, H, W) in [0, 1]; factors are (B,) tensors on the images' device. Each function
works in place on `images` and returns it, so the jitter costs no extra copies of the batch.
"""

from __future__ import annotations

import torch

# ITU-R 601-2 luma, the weights torchvision's rgb_to_grayscale uses
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def _per_sample(factors: torch.Tensor) -> torch.Tensor:
    return factors.to(torch.float32).view(-1, 1, 1, 1)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luma of each pixel, (B, 1, H, W)."""
    r, g, b = images.unbind(dim=1)
    return r.mul(GRAY_WEIGHTS[0]).add_(g, alpha=GRAY_WEIGHTS[1]).add_(b, alpha=GRAY_WEIGHTS[2]).unsqueeze(1)


def adjust_brightness(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Brightness: multiply by the factor, clamp to [0, 1]."""
    return images.mul_(_per_sample(factors)).clamp_(0, 1)


def _blend_(images: torch.Tensor, other: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    # factor * images + (1 - factor) * other, in one pass over the batch
    return images.lerp_(other, 1 - _per_sample(factors)).clamp_(0, 1)


def adjust_contrast(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Contrast: blend with the mean of the image's grayscale version."""
    # the mean of the luma is the luma of the channel means: one reading pass, no grayscale image written
    weights = torch.tensor(GRAY_WEIGHTS, device=images.device, dtype=images.dtype)
    mean = (images.mean(dim=(2, 3)) * weights).sum(dim=1)
    return _blend_(images, mean.view(-1, 1, 1, 1), factors)


def adjust_saturation(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Saturation: blend with the image's grayscale version."""
    return _blend_(images, grayscale(images), factors)


def _rgb_to_hsv(images: torch.Tensor) -> torch.Tensor:
    r, g, _ = images.unbind(dim=1)
    minc, maxc = torch.aminmax(images, dim=1)
    chroma = maxc - minc
    grey = chroma == 0  # hue and saturation are undefined there: set them to 0, as PIL and torchvision do
    saturation = chroma / torch.where(grey, torch.ones_like(maxc), maxc)
    safe_chroma = torch.where(grey, torch.ones_like(chroma), chroma)
    rc, gc, bc = ((maxc.unsqueeze(1) - images) / safe_chroma.unsqueeze(1)).unbind(dim=1)
    hue = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(grey, torch.zeros_like(hue), hue).div_(6.0).add_(1.0).remainder_(1.0)
    return torch.stack((hue, saturation, maxc), dim=1)


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    # closed form of the six HSV sectors: channel n in (R, G, B) = v - v*s*clamp(min(k, 4 - k), 0, 1),
    # k = (n + 6h) mod 6 with n = 5, 3, 1
    hue, saturation, value = hsv.unbind(dim=1)
    offsets = torch.tensor([5.0, 3.0, 1.0], device=hsv.device).view(1, 3, 1, 1)
    k = (offsets + hue.unsqueeze(1) * 6.0).remainder_(6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0, 1)
    return value.unsqueeze(1) - (value * saturation).unsqueeze(1) * ramp


def adjust_hue(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Hue: rotate the HSV hue by the shift (a fraction of the colour circle, in [-0.5, 0.5])."""
    hsv = _rgb_to_hsv(images)
    hsv[:, 0].add_(shifts.to(torch.float32).view(-1, 1, 1)).remainder_(1.0)
    return images.copy_(_hsv_to_rgb(hsv).clamp_(0, 1))
