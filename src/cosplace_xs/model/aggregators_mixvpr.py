"""MixVPR (Ali-bey et al., WACV 2023): feature-mixer MLP blocks over the flattened map, then channel and row
projections; as in amaralibey/MixVPR's models/aggregators/mixvpr.py."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

# The mixer's Linear layers need a fixed H*W (the published model fixes 20 x 20 by its 320 px input to a ResNet
# cut at layer3). Our backbones end at layer4, whose map is 7 x 7 at the default 224 px; other sizes (and
# --eval-native-size) are pooled to it.
GRID = 7
MIX_DEPTH = 4  # published defaults: mix_depth=4, mlp_ratio=1, out_rows=4
MLP_RATIO = 1
OUT_ROWS = 4


class FeatureMixerLayer(nn.Module):
    """x + W2 ReLU(W1 LayerNorm(x)) over the H*W values of each channel (the paper's Eq. 2)."""

    def __init__(self, in_dim: int, mlp_ratio: float = MLP_RATIO) -> None:
        super().__init__()
        hidden = int(in_dim * mlp_ratio)
        self.mix = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, in_dim))
        for module in self.mix:
            if isinstance(module, nn.Linear):  # the published initialisation
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mix(x)


class MixVPR(nn.Module):
    """(B, C, H, W) -> mixer blocks over H*W -> Linear(C, out_channels) -> Linear(H*W, out_rows) -> flatten -> L2;
    the descriptor has out_channels * out_rows values."""

    def __init__(self, in_channels: int, out_channels: int, out_rows: int = OUT_ROWS, mix_depth: int = MIX_DEPTH,
                 mlp_ratio: float = MLP_RATIO, grid: int = GRID) -> None:
        super().__init__()
        self.grid = grid
        hw = grid * grid
        self.mix = nn.Sequential(*[FeatureMixerLayer(hw, mlp_ratio) for _ in range(mix_depth)])
        self.channel_proj = nn.Linear(in_channels, out_channels)
        self.row_proj = nn.Linear(hw, out_rows)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.grid, self.grid):
            x = F.adaptive_avg_pool2d(x, self.grid)
        x = self.mix(x.flatten(2))  # (B, C, H*W)
        x = self.channel_proj(x.permute(0, 2, 1))  # (B, H*W, out_channels)
        x = self.row_proj(x.permute(0, 2, 1))  # (B, out_channels, out_rows)
        return F.normalize(x.flatten(1), p=2.0, dim=-1)
