"""ArcFace and SphereFace beside CosFace: margin classifiers on the same cosines, one per group, chosen by --loss.

Each differs from CosFace only in the logit of each sample's own class y, where theta_y = arccos(cos(x, W_y)):
CosFace s * (cos theta_y - m), ArcFace s * cos(theta_y + m), SphereFace s * psi(theta_y). The other classes'
logits are s * cos theta_j for all three. Weights, initialisation and the float32 cosine are CosFace's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

import torch
from torch import Tensor

from cosplace_xs.config import LossConfig
from cosplace_xs.model.cosface import CosFace


class ArcFace(CosFace):
    """Additive angular margin (Deng et al., CVPR 2019, eq. 3): s * cos(theta_y + m) at the true class.

    Where theta_y + m would pass pi, cos(theta_y + m) would rise again and reward a worse angle; there the logit
    continues as s * (cos theta_y - m sin m), as insightface's ArcFace does (its easy_margin=False branch)."""

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        cosine = self.cosine(x)
        target = cosine.gather(1, labels[:, None])
        # clamped away from 0: sqrt's gradient is infinite there (x parallel to W_y)
        sine = (1 - target * target).clamp(min=1e-12).sqrt()
        shifted = target * math.cos(self.m) - sine * math.sin(self.m)
        shifted = torch.where(target > math.cos(math.pi - self.m), shifted, target - self.m * math.sin(self.m))
        return self.s * cosine.scatter(1, labels[:, None], shifted)


class SphereFace(CosFace):
    """Multiplicative angular margin (Liu et al., CVPR 2017, eq. 7): s * psi(theta_y) at the true class, with
    psi(theta) = (-1)^k cos(m theta) - 2k for theta in [k pi / m, (k + 1) pi / m], decreasing in theta for m >= 1.

    As opensphere ("SphereFace Revived", TPAMI 2022) trains it: normalised features with a scale s, and the margin
    psi - cos as a constant of the step (its gradient detachment), so the gradient is that of s * cos theta_y."""

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        cosine = self.cosine(x)
        target = cosine.gather(1, labels[:, None])
        with torch.no_grad():
            theta = target.clamp(-1.0, 1.0).acos()
            k = torch.floor(self.m * theta / math.pi)
            psi = (1 - 2 * torch.remainder(k, 2)) * torch.cos(self.m * theta) - 2 * k
            margin = psi - target
        return self.s * cosine.scatter(1, labels[:, None], target + margin)


MARGINS: Mapping[str, type[CosFace]] = MappingProxyType({
    "cosface": CosFace,
    "arcface": ArcFace,
    "sphereface": SphereFace,
})


def margin_classifier(config: LossConfig, in_features: int, out_features: int) -> CosFace:
    """The classifier `config.loss` names, with its scale and margin (the loss's own defaults where none is set)."""
    return MARGINS[config.loss](in_features, out_features, s=config.scale, m=config.margin)
