"""Cutout (DeVries & Taylor 2017): a black square at a random place, on the images chosen for it."""

from __future__ import annotations

import torch


def cutout(images: torch.Tensor, chosen: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
           size: int) -> torch.Tensor:
    """Zero a `size` x `size` square at (top, left) in each chosen image (bool (B,)); in place."""
    height, width = images.shape[-2:]
    device = images.device
    top, left, chosen = top.to(device).view(-1, 1), left.to(device).view(-1, 1), chosen.to(device).view(-1, 1, 1)
    rows = torch.arange(height, device=device).view(1, -1)
    cols = torch.arange(width, device=device).view(1, -1)
    inside_rows = (rows >= top) & (rows < top + size)
    inside_cols = (cols >= left) & (cols < left + size)
    square = inside_rows.unsqueeze(2) & inside_cols.unsqueeze(1) & chosen
    return images.masked_fill_(square.unsqueeze(1), 0.0)
