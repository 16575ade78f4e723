"""NetVLAD's centroids from k-means on local features of training images, before the first step.

As gmberton/deep-visual-geo-localization-benchmark's `initialize_netvlad_layer`: up to 50,000 L2-normalised
local features, 100 drawn from each of up to 500 training images, clustered by faiss k-means (100 iterations);
then alpha from the centroids (aggregators_netvlad.NetVLAD.init_params)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cosplace_xs.augment.pipeline import normalize
from cosplace_xs.config import TrainConfig
from cosplace_xs.data.images import read_image
from cosplace_xs.errors import ConfigError
from cosplace_xs.model.aggregators import find_netvlad
from cosplace_xs.model.network import GeoLocalizationNet
from cosplace_xs.options import flag_of

log = logging.getLogger(__name__)

DESCRIPTORS = 50_000
PER_IMAGE = 100
KMEANS_ITERATIONS = 100
BATCH_SIZE = 16
MIN_PER_CENTROID = 39  # faiss's min_points_per_centroid


@torch.no_grad()
def local_features(model: GeoLocalizationNet, paths: list[Path], image_size: int, device: torch.device,
                   rng: np.random.Generator, max_pixels: int) -> np.ndarray:
    """(N, C) unit-norm local features of the backbone: up to PER_IMAGE positions drawn from each image's map."""
    chunks = []
    for start in range(0, len(paths), BATCH_SIZE):
        batch = torch.stack([read_image(path, image_size, max_pixels) for path in paths[start:start + BATCH_SIZE]])
        features = model.backbone(normalize(batch).to(device))
        if isinstance(features, tuple):  # a ViT's (patch map, CLS token)
            features = features[0]
        features = F.normalize(features.float(), p=2.0, dim=1).flatten(2).permute(0, 2, 1).cpu().numpy()
        for image in features:  # (H*W, C)
            chosen = rng.choice(len(image), min(PER_IMAGE, len(image)), replace=False)
            chunks.append(image[np.sort(chosen)])
    return np.concatenate(chunks).astype(np.float32)


def initialise_netvlad(model: GeoLocalizationNet, images: list[Path], config: TrainConfig,
                       device: torch.device) -> float | None:
    """k-means initialisation of the model's NetVLAD layer (none: nothing done, None returned); returns alpha.
    Seeded by `config.seed`; the model's training mode and the global RNG are left as they were."""
    vlad = find_netvlad(model.aggregation)
    if vlad is None:
        return None
    import faiss  # here: the library loads in seconds, and only NetVLAD runs need it

    rng = np.random.default_rng(config.seed)
    count = min(len(images), math.ceil(DESCRIPTORS / PER_IMAGE))
    paths = [images[i] for i in np.sort(rng.choice(len(images), count, replace=False))]
    was_training = model.training
    model.eval()  # BatchNorm's running statistics must not learn from these images
    try:
        descriptors = local_features(model, paths, config.image_size, device, rng, config.max_image_pixels)
    finally:
        model.train(was_training)
    if len(descriptors) < vlad.clusters:
        raise ConfigError(
            f"NetVLAD's {vlad.clusters} centroids are initialised by k-means on local features of the training "
            f"images, and {count} images at {flag_of(TrainConfig, 'image_size')}={config.image_size} give only "
            f"{len(descriptors)}; train on larger images or more of them")
    if len(descriptors) < MIN_PER_CENTROID * vlad.clusters:
        log.warning("NetVLAD: k-means of %d centroids on only %d local features (faiss asks for %d); the centroids "
                    "will be rough", vlad.clusters, len(descriptors), MIN_PER_CENTROID * vlad.clusters)
    # faiss's own warning of the same would go to stderr from C++, past logging
    kmeans = faiss.Kmeans(descriptors.shape[1], vlad.clusters, niter=KMEANS_ITERATIONS, seed=config.seed,
                          verbose=False, min_points_per_centroid=1)
    kmeans.train(descriptors)
    alpha = vlad.init_params(torch.from_numpy(kmeans.centroids).to(vlad.centroids.device),
                             torch.from_numpy(descriptors).to(vlad.centroids.device))
    log.info("NetVLAD: %d centroids from k-means on %d local features of %d training images (alpha %.1f)",
             vlad.clusters, len(descriptors), count, alpha)
    return alpha
