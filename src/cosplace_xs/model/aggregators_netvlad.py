"""NetVLAD (Arandjelovic et al., CVPR 2016): soft-assignment of local features to K learned centroids by a 1x1
convolution, the assigned residuals summed per centroid, intra-normalised, then L2-normalised (the paper's
Eq. 1-4). The initialisation follows gmberton/deep-visual-geo-localization-benchmark: centroids from k-means on
training features, and the assignment's sharpness alpha from how far apart the nearest two centroids are."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CLUSTERS = 64  # K, the published default
# alpha makes the soft-assignment give the second-nearest centroid a hundredth of the nearest one's weight, on
# average over the k-means descriptors
SECOND_NEAREST_RATIO = 0.01


class NetVLAD(nn.Module):
    """(B, C, H, W) -> (B, K * C) unit-norm VLAD vectors."""

    def __init__(self, channels: int, clusters: int = CLUSTERS) -> None:
        super().__init__()
        self.clusters = clusters
        self.conv = nn.Conv2d(channels, clusters, kernel_size=1, bias=False)
        self.centroids = nn.Parameter(torch.rand(clusters, channels))

    def forward(self, x: Tensor) -> Tensor:
        x = F.normalize(x, p=2.0, dim=1)  # the input features are L2-normalised across channels
        soft_assign = F.softmax(self.conv(x).flatten(2), dim=1)  # (B, K, H*W): a_k(x_i), Eq. 3
        features = x.flatten(2)  # (B, C, H*W)
        # V(k) = sum_i a_k(x_i) (x_i - c_k) = sum_i a_k(x_i) x_i - c_k sum_i a_k(x_i), Eq. 4
        vlad = torch.einsum("bkn,bcn->bkc", soft_assign, features)
        vlad = vlad - self.centroids.unsqueeze(0) * soft_assign.sum(dim=-1, keepdim=True)
        vlad = F.normalize(vlad, p=2.0, dim=2)  # intra-normalisation
        return F.normalize(vlad.flatten(1), p=2.0, dim=1)

    @torch.no_grad()
    def init_params(self, centroids: Tensor, descriptors: Tensor) -> float:
        """Set the centroids (K, C) found by k-means on `descriptors` (N, C, unit-norm) and the assignment
        weights alpha * c_k / |c_k|; returns alpha = -ln(0.01) / mean(nearest - second-nearest dot product)."""
        unit = F.normalize(centroids.float(), p=2.0, dim=1)
        dots = (unit @ descriptors.float().T).topk(2, dim=0).values  # (2, N): the nearest two per descriptor
        alpha = -math.log(SECOND_NEAREST_RATIO) / (dots[0] - dots[1]).mean().item()
        self.centroids.copy_(centroids)
        self.conv.weight.copy_((alpha * unit)[:, :, None, None])
        return alpha
