"""Aggregator registry: each `--aggregation` name's head, from the backbone's features to a (B, D) unit-norm
descriptor, and what D means for it.

`gem` is CosPlace's own head, L2Norm -> GeM -> Flatten -> Linear(C, D) -> L2Norm, kept as the same
`nn.Sequential` so that its state dict keys (`aggregation.1.p`, `aggregation.3.weight`) stay the official ones.
A head takes the backbone's (B, C, H, W) map; SALAD takes (patch map, CLS token) and so needs a backbone that
gives tokens (a ViT).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from torch import nn

from cosplace_xs.config import ModelConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.model.aggregators_mixvpr import OUT_ROWS, MixVPR
from cosplace_xs.model.aggregators_netvlad import NetVLAD
from cosplace_xs.model.aggregators_salad import SALAD
from cosplace_xs.model.layers import GeM, L2Norm
from cosplace_xs.options import flag_of


def gem_head(channels: int, dim: int) -> nn.Module:
    """CosPlace: L2Norm -> GeM -> Flatten -> Linear(C, D) -> L2Norm."""
    return nn.Sequential(L2Norm(dim=1), GeM(), nn.Flatten(), nn.Linear(channels, dim), L2Norm(dim=1))


def mixvpr_head(channels: int, dim: int) -> nn.Module:
    """MixVPR with out_rows = 4 and out_channels = D / 4 (the published 2048 = 512 x 4)."""
    if dim % OUT_ROWS:
        raise ConfigError(f"option {flag_of(ModelConfig, 'fc_output_dim')}={dim}: MixVPR's descriptor is "
                          f"out_channels x {OUT_ROWS} rows, so D must be a multiple of {OUT_ROWS} (e.g. "
                          f"{max(OUT_ROWS, dim - dim % OUT_ROWS)})")
    return MixVPR(channels, dim // OUT_ROWS)


def netvlad_head(channels: int, dim: int) -> nn.Module:
    """NetVLAD (K = 64, K * C values), then Linear(K * C, D) -> L2Norm, as the benchmark's --fc_output_dim."""
    vlad = NetVLAD(channels)
    return nn.Sequential(vlad, nn.Linear(vlad.clusters * channels, dim), L2Norm(dim=1))


def salad_head(channels: int, dim: int) -> nn.Module:
    """SALAD (256 + 64 x 128 = 8448 values), then Linear(8448, D) -> L2Norm."""
    salad = SALAD(channels)
    return nn.Sequential(salad, nn.Linear(salad.output_dim, dim), L2Norm(dim=1))


@dataclass(frozen=True)
class AggregatorSpec:
    """What the model needs to know about one aggregation method."""

    name: str
    head: Callable[[int, int], nn.Module]  # (backbone channels C, descriptor size D) -> the head
    takes_tokens: bool  # needs (patch map, CLS token) from a ViT backbone
    size: str  # what D is, for the README and --help


AGGREGATORS: Mapping[str, AggregatorSpec] = MappingProxyType({spec.name: spec for spec in (
    AggregatorSpec("gem", gem_head, False, "D (the paper's)"),
    AggregatorSpec("mixvpr", mixvpr_head, False, "D = out_channels x 4 rows (a multiple of 4)"),
    AggregatorSpec("netvlad", netvlad_head, False, "D, projected from K x C = 64 x C"),
    AggregatorSpec("salad", salad_head, True, "D, projected from 256 + 64 x 128 = 8448"),
)})


def aggregator_spec(name: str) -> AggregatorSpec:
    """The registry entry of `name`; an unknown name is a ConfigError listing the known ones."""
    if name not in AGGREGATORS:
        raise ConfigError(f"option {flag_of(ModelConfig, 'aggregation')}={name!r} is not a known aggregation; "
                          f"choose one of {', '.join(AGGREGATORS)}")
    return AGGREGATORS[name]


def build_head(name: str, backbone: str, channels: int, dim: int, gives_tokens: bool) -> nn.Module:
    """The head of aggregation `name` on `backbone` (C channels) with descriptor size D."""
    spec = aggregator_spec(name)
    if spec.takes_tokens and not gives_tokens:
        raise ConfigError(f"option {flag_of(ModelConfig, 'aggregation')}={name} needs a backbone that gives tokens "
                          f"(CLS and patch tokens of a ViT such as DINOv2), and {flag_of(ModelConfig, 'backbone')}="
                          f"{backbone} gives a feature map; choose a ViT backbone or another aggregation")
    return spec.head(channels, dim)


def find_netvlad(head: nn.Module) -> NetVLAD | None:
    """The NetVLAD layer of a head, which k-means initialises before training; None for other heads."""
    return next((module for module in head.modules() if isinstance(module, NetVLAD)), None)
