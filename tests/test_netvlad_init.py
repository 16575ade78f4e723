"""NetVLAD's k-means initialisation before training: centroids of the backbone's local features, alpha from them,
seeded, and a clear error when the images give too few features."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers import write_image

from cosplace_xs.config import TrainConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.model.network import GeoLocalizationNet
from cosplace_xs.training.netvlad_init import initialise_netvlad

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("netvlad")
    return [write_image(folder / f"{i}.jpg", color=(30 * i, 200 - 20 * i, 90)) for i in range(8)]


def netvlad_model() -> GeoLocalizationNet:
    torch.manual_seed(0)
    return GeoLocalizationNet("resnet18", 8, aggregation="netvlad").train()


@pytest.fixture(scope="module")
def initialised(images) -> tuple[GeoLocalizationNet, float]:
    """A NetVLAD model initialised with seed 3, and its alpha."""
    model = netvlad_model()
    return model, initialise_netvlad(model, images, TrainConfig(image_size=96, seed=3), CPU)


def test_centroids_come_from_k_means_and_alpha_from_the_nearest_two(initialised) -> None:
    model, alpha = initialised
    vlad = model.aggregation[0]
    # k-means centroids of unit vectors lie inside the unit ball; torch.rand's start is far outside (|c| ~ 13)
    assert vlad.centroids.norm(dim=1).max().item() <= 1 + 1e-5
    unit = vlad.centroids / vlad.centroids.norm(dim=1, keepdim=True)
    torch.testing.assert_close(vlad.conv.weight[:, :, 0, 0], alpha * unit)
    assert alpha > -math.log(0.01)  # the nearest two centroids are less than 1 apart in dot product
    assert model.training  # handed back in the mode it came in


def test_the_same_seed_gives_the_same_centroids_and_another_seed_others(images, initialised) -> None:
    first, second, other = initialised[0], netvlad_model(), netvlad_model()
    for model, seed in ((second, 3), (other, 4)):
        initialise_netvlad(model, images, TrainConfig(image_size=96, seed=seed), CPU)
    assert torch.equal(first.aggregation[0].centroids, second.aggregation[0].centroids)
    assert not torch.equal(first.aggregation[0].centroids, other.aggregation[0].centroids)


def test_other_aggregations_are_left_alone(images) -> None:
    model = GeoLocalizationNet("resnet18", 8)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    assert initialise_netvlad(model, images, TrainConfig(image_size=32), CPU) is None
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())


def test_too_few_local_features_for_the_centroids(images) -> None:
    with pytest.raises(ConfigError) as error:
        initialise_netvlad(netvlad_model(), images, TrainConfig(image_size=32), CPU)
    assert str(error.value) == ("NetVLAD's 64 centroids are initialised by k-means on local features of the "
                                "training images, and 8 images at --image-size=32 give only 8; train on larger "
                                "images or more of them")
