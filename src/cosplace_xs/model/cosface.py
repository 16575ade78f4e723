"""CosFace, the large margin cosine classifier of CosPlace (its MarginCosineProduct): one per group."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _without_autocast(device: torch.device) -> contextlib.AbstractContextManager[None]:
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()  # e.g. the meta device, where FLOPs are counted


class CosFace(nn.Module):
    """logits_j = s * (cos(x, W_j) - m * [j == y]), cosines of L2-normalised descriptors x and weight rows W_j."""

    def __init__(self, in_features: int, out_features: int, s: float = 30.0, m: float = 0.4,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.s = s
        self.m = m
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.xavier_uniform_(self.weight, generator=generator)

    def cosine(self, x: Tensor) -> Tensor:
        """(B, in_features) -> (B, out_features) cosines, without margin or scale."""
        # float32 even under autocast: s = 30 would turn bf16 rounding of the cosine into logit errors of 0.1
        with _without_autocast(x.device):
            return F.linear(F.normalize(x.float(), dim=1), F.normalize(self.weight.float(), dim=1))

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        """Logits for cross-entropy: the margin m is taken from each sample's own class y only."""
        cosine = self.cosine(x)
        margin = F.one_hot(labels, self.out_features).to(cosine.dtype) * self.m
        return self.s * (cosine - margin)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, s={self.s}, m={self.m}"
