"""The aggregation layers of CosPlace: L2 normalisation and generalized-mean (GeM) pooling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class L2Norm(nn.Module):
    """x / ||x||_2 along `dim`: over channels before GeM, over the descriptor after the last Linear."""

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, p=2.0, dim=self.dim)


class GeM(nn.Module):
    """Generalized-mean pooling, (mean over H, W of clamp(x, eps)^p)^(1/p), with a learnable p (init 3)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.full((1,), float(p)))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # In float32 even under bf16/fp16 autocast: eps^p and the sum of H*W cubes lose most of their digits
        # in 8 mantissa bits. The result goes back to the input's dtype for the Linear layer after it.
        p = self.p.float()
        pooled = x.float().clamp(min=self.eps).pow(p).mean(dim=(-2, -1), keepdim=True).pow(1.0 / p)
        return pooled.to(x.dtype)

    def extra_repr(self) -> str:
        p = "?" if self.p.is_meta else f"{self.p.item():.4f}"  # the learned p, as CosPlace prints it
        return f"p={p}, eps={self.eps}"
