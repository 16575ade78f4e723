"""PCA of descriptors, folded into the model: a D-dim model becomes a K-dim one.

The projection is scikit-learn's exact PCA (full SVD), `(x - mean) @ components.T`, divided by each
component's standard deviation when whitened; the model's new last layers are that projection as a
Linear(D, K) and an L2 norm, so the reduced descriptors are unit vectors as the model's own are. The
checkpoint records K (`model.pca_dim`) so that `read_trained_model` builds the same layers before loading.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cosplace_xs.config import PCAConfig, RunConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.model.layers import L2Norm
from cosplace_xs.model.network import GeoLocalizationNet
from cosplace_xs.options import flag_of


@dataclass(frozen=True)
class FittedPCA:
    """x -> (x - mean) @ components.T / scale: mean (D,), components (K, D), scale (K,) (ones unless whitened);
    explained: the share of the variance each component explains, (K,)."""

    mean: np.ndarray
    components: np.ndarray
    scale: np.ndarray
    explained: np.ndarray

    @property
    def weight(self) -> np.ndarray:
        """The Linear layer's weight (K, D)."""
        return (self.components / self.scale[:, None]).astype(np.float32)

    @property
    def bias(self) -> np.ndarray:
        """The Linear layer's bias (K,): the mean moved through the weight."""
        return (-self.weight @ self.mean).astype(np.float32)


def check_dims(dims: tuple[int, ...] | list[int], size: int, count: int) -> None:
    """Each K must be at most the descriptor size D and below the number n of descriptors fitted (n points span
    at most n - 1 directions around their mean): a ConfigError naming the option otherwise."""
    flag = flag_of(PCAConfig, "dims")
    for dim in dims:
        if dim > size:
            raise ConfigError(f"option {flag}={dim} is larger than the model's descriptor size {size}: give "
                              f"K <= {size}")
        if dim > count - 1:
            raise ConfigError(f"option {flag}={dim} needs at least {dim + 1} descriptors to fit; {count} were "
                              f"given: lower it, or fit on more images ({flag_of(PCAConfig, 'fit_on')}, "
                              f"{flag_of(PCAConfig, 'max_images')})")


def fit_pca(descriptors: np.ndarray, dim: int, whiten: bool = False) -> FittedPCA:
    """Exact PCA of (n, D) descriptors to `dim` components (see `check_dims`)."""
    from sklearn.decomposition import PCA

    check_dims((dim,), descriptors.shape[1], len(descriptors))
    pca = PCA(n_components=dim, whiten=whiten, svd_solver="full").fit(np.asarray(descriptors, dtype=np.float64))
    scale = np.sqrt(pca.explained_variance_) if whiten else np.ones(dim)
    return FittedPCA(pca.mean_, pca.components_, scale, pca.explained_variance_ratio_)


def project(descriptors: np.ndarray, pca: FittedPCA) -> np.ndarray:
    """What the folded model gives: the projection of (..., D) descriptors, L2-normalised, float32."""
    reduced = np.asarray(descriptors, dtype=np.float32) @ pca.weight.T + pca.bias
    return reduced / np.maximum(np.linalg.norm(reduced, axis=-1, keepdims=True), 1e-12)


class PCAProjection(nn.Sequential):
    """Linear(D, K) holding the PCA, then L2Norm: the layers appended to the model's head."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__(nn.Linear(in_dim, dim), L2Norm(dim=1))


def add_pca_layers(model: GeoLocalizationNet, dim: int, pca: FittedPCA | None = None) -> GeoLocalizationNet:
    """`model` with its head followed by a PCA to `dim` (filled from `pca`, else left for a state dict to load)."""
    projection = PCAProjection(model.fc_output_dim, dim)
    if pca is not None:
        with torch.no_grad():
            projection[0].weight.copy_(torch.from_numpy(pca.weight))
            projection[0].bias.copy_(torch.from_numpy(pca.bias))
    model.aggregation = nn.Sequential(model.aggregation, projection)
    model.fc_output_dim = dim
    return model


def pca_checkpoint(model: GeoLocalizationNet, config: RunConfig, pca: FittedPCA, whiten: bool
                   ) -> dict[str, object]:
    """The checkpoint of `model` (not yet reduced; left as it is) with `pca` folded in, its config recording it."""
    if config.model.pca_dim is not None:
        raise ConfigError(f"the model already ends with a PCA to {config.model.pca_dim} dimensions; reduce the "
                          "checkpoint it was made from instead")
    reduced = add_pca_layers(copy.deepcopy(model), len(pca.components), pca)
    model_config = dataclasses.replace(config.model, pca_dim=len(pca.components), pca_whiten=whiten)
    return {"config": dataclasses.replace(config, model=model_config).to_dict(),
            "model": {key: value.detach().cpu() for key, value in reduced.state_dict().items()}}

