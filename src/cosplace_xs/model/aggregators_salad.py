"""SALAD (Izquierdo and Civera, CVPR 2024): local features assigned to clusters by optimal transport with a
dustbin (Sinkhorn), the global CLS token beside them; as in serizba/salad's models/aggregators/salad.py."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cosplace_xs.config import TrainConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.options import flag_of

CLUSTERS = 64  # published defaults: num_clusters=64, cluster_dim=128, token_dim=256, dropout=0.3
CLUSTER_DIM = 128
TOKEN_DIM = 256
DROPOUT = 0.3
HIDDEN = 512
SINKHORN_ITERATIONS = 3


def log_sinkhorn(log_a: Tensor, log_b: Tensor, scores: Tensor, iterations: int) -> Tensor:
    """log P of the entropic transport plan of `scores` (B, m, n) with row masses exp(log_a), column masses
    exp(log_b); the last update is the columns', so they are exact and the rows converge."""
    u, v = torch.zeros_like(log_a), torch.zeros_like(log_b)
    for _ in range(iterations):
        u = log_a - torch.logsumexp(scores + v.unsqueeze(1), dim=2)
        v = log_b - torch.logsumexp(scores + u.unsqueeze(2), dim=1)
    return scores + u.unsqueeze(2) + v.unsqueeze(1)


def matching_probabilities(scores: Tensor, dustbin: Tensor, iterations: int = SINKHORN_ITERATIONS) -> Tensor:
    """(B, m clusters, n features) scores -> (B, m + 1, n) assignment, its last row the dustbin's.

    Each feature gives a mass of 1 (every column sums to 1), each cluster receives 1 and the dustbin the
    remaining n - m (so n >= m + 1 features are needed)."""
    batch, m, n = scores.shape
    if n <= m:
        raise ConfigError(f"SALAD assigns the patch tokens to {m} clusters and a dustbin, and an image gave only {n} "
                          f"tokens; it needs more than {m}: use larger images ({flag_of(TrainConfig, 'image_size')}; "
                          "DINOv2's 14-pixel patches give 16 x 16 = 256 tokens at 224 px)")
    augmented = torch.cat([scores, dustbin.to(scores.dtype).expand(batch, 1, n)], dim=1)
    norm = -math.log(n + m)
    log_a = torch.full((batch, m + 1), norm, dtype=scores.dtype, device=scores.device)
    log_a[:, -1] += math.log(n - m)
    log_b = torch.full((batch, n), norm, dtype=scores.dtype, device=scores.device)
    return (log_sinkhorn(log_a, log_b, augmented, iterations) - norm).exp()


class SALAD(nn.Module):
    """((B, C, H, W) patch tokens, (B, C) CLS token) -> (B, token_dim + clusters * cluster_dim) unit-norm."""

    def __init__(self, channels: int, clusters: int = CLUSTERS, cluster_dim: int = CLUSTER_DIM,
                 token_dim: int = TOKEN_DIM, dropout: float = DROPOUT) -> None:
        super().__init__()
        self.clusters, self.cluster_dim, self.token_dim = clusters, cluster_dim, token_dim
        drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.token_features = nn.Sequential(nn.Linear(channels, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, token_dim))
        self.cluster_features = nn.Sequential(nn.Conv2d(channels, HIDDEN, 1), drop, nn.ReLU(),
                                              nn.Conv2d(HIDDEN, cluster_dim, 1))
        self.score = nn.Sequential(nn.Conv2d(channels, HIDDEN, 1), drop, nn.ReLU(), nn.Conv2d(HIDDEN, clusters, 1))
        self.dust_bin = nn.Parameter(torch.tensor(1.0))  # z, the dustbin's score

    @property
    def output_dim(self) -> int:
        return self.token_dim + self.clusters * self.cluster_dim

    def forward(self, tokens: tuple[Tensor, Tensor]) -> Tensor:
        patches, cls = tokens
        features = self.cluster_features(patches).flatten(2)  # (B, cluster_dim, n)
        # Sinkhorn in float32 even under bf16/fp16 autocast: its log-sum-exps lose the marginals in 8 mantissa bits
        scores = self.score(patches).flatten(2).float()
        assignment = matching_probabilities(scores, self.dust_bin)[:, :-1].to(features.dtype)  # (B, K, n)
        clusters = torch.einsum("bdn,bkn->bdk", features, assignment)  # (B, cluster_dim, K)
        global_token = F.normalize(self.token_features(cls), p=2.0, dim=-1)
        clusters = F.normalize(clusters, p=2.0, dim=1).flatten(1)
        return F.normalize(torch.cat([global_token, clusters], dim=-1), p=2.0, dim=-1)
