"""Cutout (DeVries & Taylor 2017): a black square at a random place, on the images chosen for it."""

from __future__ import annotations

import torch


def cutout(images: torch.Tensor, chosen: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
           size: int) -> torch.Tensor:
    """Zero a `size` x `size` square at (top, left) in each chosen image (bool (B,)); in place.

    The parameters are small CPU tensors (as `sample_params` draws them): one slice per image touches only
    its square, where a batch-wide mask would read and write every pixel.
    """
    for index, (picked, row, column) in enumerate(zip(chosen.tolist(), top.tolist(), left.tolist(), strict=True)):
        if picked:
            images[index, :, row:row + size, column:column + size] = 0.0
    return images
