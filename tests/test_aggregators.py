"""Aggregation heads: each core formula on a hand-computed tiny input, descriptor shapes at two sizes, the
registry and its errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cosplace_xs.config import AGGREGATION_NAMES, ModelConfig
from cosplace_xs.errors import CheckpointError, ConfigError
from cosplace_xs.model import aggregators_salad
from cosplace_xs.model.aggregators import AGGREGATORS, build_head, find_netvlad
from cosplace_xs.model.aggregators_mixvpr import FeatureMixerLayer, MixVPR
from cosplace_xs.model.aggregators_netvlad import NetVLAD
from cosplace_xs.model.aggregators_salad import SALAD, matching_probabilities
from cosplace_xs.model.network import GeoLocalizationNet, build_model, load_model_state


def test_the_schema_lists_every_aggregation_of_the_registry() -> None:
    assert AGGREGATION_NAMES == tuple(AGGREGATORS) == ("gem", "mixvpr", "netvlad", "salad")
    assert ModelConfig().aggregation == "gem"


def test_netvlad_on_two_centroids_and_three_features() -> None:
    # features (1,0), (0,1), (1,0) as a 1 x 3 map; centroids c1 = (1,0), c2 = (0,1); assignment logits
    # (ln 3 * x_1, 0): (1,0) goes 3/4 to c1, 1/4 to c2; (0,1) half to each
    vlad = NetVLAD(channels=2, clusters=2)
    with torch.no_grad():
        vlad.centroids.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        vlad.conv.weight.copy_(torch.tensor([[math.log(3), 0.0], [0.0, 0.0]])[:, :, None, None])
    x = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 2, 1, 3)
    # V1 = 3/4 (0,0) + 1/2 (-1,1) + 3/4 (0,0) = (-1/2, 1/2); V2 = 1/4 (1,-1) + 1/2 (0,0) + 1/4 (1,-1) = (1/2, -1/2);
    # each intra-normalised to length 1, then the whole to length 1
    torch.testing.assert_close(vlad(x), torch.tensor([[-0.5, 0.5, 0.5, -0.5]]))


def test_netvlad_alpha_makes_the_second_centroid_a_hundredth_as_likely() -> None:
    vlad = NetVLAD(channels=2, clusters=2)
    centroids = torch.tensor([[2.0, 0.0], [0.0, 1.0]])  # not unit: the assignment uses their directions
    descriptors = torch.tensor([[1.0, 0.0], [0.8, 0.6]])  # nearest minus second dot products: 1 and 0.2
    alpha = vlad.init_params(centroids, descriptors)
    assert alpha == pytest.approx(-math.log(0.01) / 0.6)
    torch.testing.assert_close(vlad.centroids.data, centroids)
    torch.testing.assert_close(vlad.conv.weight[:, :, 0, 0], torch.tensor([[alpha, 0.0], [0.0, alpha]]))


def test_sinkhorn_on_a_2x2_plan_reaches_the_marginals() -> None:
    # one cluster, two features and the dustbin: every row and column of the plan sums to 1 (the dustbin gets
    # n - m = 1); the cross ratio p^2 / (1 - p)^2 = exp(s1 - s2) = 9 gives p = 3/4
    scores = torch.tensor([[[math.log(9.0), 0.0]]])
    plan = matching_probabilities(scores, torch.tensor(1.0), iterations=100)
    torch.testing.assert_close(plan, torch.tensor([[[0.75, 0.25], [0.25, 0.75]]]))


def test_sinkhorn_columns_hold_each_features_mass_after_the_published_three_iterations() -> None:
    scores = torch.randn(2, 4, 9, generator=torch.Generator().manual_seed(0))
    plan = matching_probabilities(scores, torch.tensor(1.0))
    torch.testing.assert_close(plan.sum(dim=1), torch.ones(2, 9))


def test_mixer_with_identity_weights_adds_the_relu_of_the_layer_norm() -> None:
    mixer = FeatureMixerLayer(3)
    with torch.no_grad():
        for linear in (mixer.mix[1], mixer.mix[3]):
            linear.weight.copy_(torch.eye(3))
            linear.bias.zero_()
    # LayerNorm(1, 2, 3) = (-1, 0, 1) / sqrt(2/3 + 1e-5): only the last survives the ReLU
    expected = torch.tensor([1.0, 2.0, 3.0 + 1 / math.sqrt(2 / 3 + 1e-5)])
    torch.testing.assert_close(mixer(torch.tensor([[1.0, 2.0, 3.0]])), expected.unsqueeze(0))


def test_mixvpr_projects_channels_then_rows() -> None:
    mix = MixVPR(in_channels=2, out_channels=1, out_rows=1, mix_depth=0, grid=2)
    with torch.no_grad():
        mix.channel_proj.weight.copy_(torch.tensor([[1.0, 2.0]]))
        mix.channel_proj.bias.zero_()
        mix.row_proj.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, -1.0]]))
        mix.row_proj.bias.fill_(0.5)
    x = torch.arange(8.0).view(1, 2, 2, 2)  # channel 0: 0..3, channel 1: 4..7
    # per position: x0 + 2 x1 = 8, 11, 14, 17; rows: 8 - 17 + 0.5 = -8.5, normalised to -1
    torch.testing.assert_close(mix(x), torch.tensor([[-1.0]]))


@pytest.mark.parametrize("aggregation", ["gem", "mixvpr", "netvlad"])
@pytest.mark.parametrize("dim", [16, 64])
def test_descriptor_shape_for_each_size(aggregation, dim) -> None:
    model = GeoLocalizationNet("resnet18", dim, aggregation=aggregation).eval()
    with torch.no_grad():
        descriptors = model(torch.randn(2, 3, 32, 48, generator=torch.Generator().manual_seed(1)))
    assert descriptors.shape == (2, dim)
    torch.testing.assert_close(descriptors.norm(dim=1), torch.ones(2))


@pytest.mark.parametrize("dim", [16, 64])
def test_salad_on_random_tokens(dim) -> None:
    generator = torch.Generator().manual_seed(2)
    head = build_head("salad", "a-vit", channels=12, dim=dim, gives_tokens=True).eval()
    tokens = (torch.randn(2, 12, 9, 8, generator=generator), torch.randn(2, 12, generator=generator))
    with torch.no_grad():
        descriptors = head(tokens)
        inner = head[0](tokens)
    assert descriptors.shape == (2, dim) and inner.shape == (2, 256 + 64 * 128)
    torch.testing.assert_close(descriptors.norm(dim=1), torch.ones(2))
    # the CLS part and every cluster's part are unit vectors before the whole is normalised: 1 + 64 of them
    torch.testing.assert_close(inner[:, :256].norm(dim=1), torch.full((2,), 1 / math.sqrt(65)))


def test_salad_under_bf16_autocast_solves_the_transport_in_float32(monkeypatch) -> None:
    # in bf16 the plan of 64 clusters x 256 tokens is off by 0.017 where its largest entry is 0.097
    plans = []

    def recorded(scores, dustbin):
        plans.append(matching_probabilities(scores, dustbin))
        return plans[-1]

    monkeypatch.setattr(aggregators_salad, "matching_probabilities", recorded)
    generator = torch.Generator().manual_seed(3)
    head = SALAD(channels=12).eval()
    tokens = (torch.randn(2, 12, 9, 8, generator=generator), torch.randn(2, 12, generator=generator))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        descriptors = head(tokens)
    assert plans[0].dtype == torch.float32 and descriptors.dtype == torch.bfloat16
    torch.testing.assert_close(plans[0].sum(dim=1), torch.ones(2, 72))


def test_salad_needs_more_patch_tokens_than_clusters() -> None:
    with pytest.raises(ConfigError) as error:
        SALAD(channels=4)((torch.zeros(1, 4, 8, 8), torch.zeros(1, 4)))
    assert str(error.value) == (
        "SALAD assigns the patch tokens to 64 clusters and a dustbin, and an image gave only 64 tokens; it needs "
        "more than 64: use larger images (--image-size; DINOv2's 14-pixel patches give 16 x 16 = 256 tokens at "
        "224 px)")


def test_salad_on_a_backbone_without_tokens_names_both_options() -> None:
    with pytest.raises(ConfigError) as error:
        GeoLocalizationNet("resnet18", 16, aggregation="salad")
    assert str(error.value) == (
        "option --aggregation=salad needs a backbone that gives tokens (CLS and patch tokens of a ViT such as "
        "DINOv2), and --backbone=resnet18 gives a feature map; choose a ViT backbone or another aggregation")


def test_mixvpr_descriptor_size_must_be_a_multiple_of_its_rows() -> None:
    with pytest.raises(ConfigError) as error:
        build_head("mixvpr", "resnet18", 512, 30, gives_tokens=False)
    assert str(error.value) == ("option --fc-output-dim=30: MixVPR's descriptor is out_channels x 4 rows, so D "
                                "must be a multiple of 4 (e.g. 28)")


def test_gem_state_keys_are_the_official_ones() -> None:
    keys = [key for key in GeoLocalizationNet("resnet18", 8).state_dict() if key.startswith("aggregation")]
    assert keys == ["aggregation.1.p", "aggregation.3.weight", "aggregation.3.bias"]


def test_build_model_builds_the_configured_aggregation() -> None:
    model = build_model(ModelConfig(fc_output_dim=8, aggregation="netvlad", pretrained="none"))
    assert model.aggregation_name == "netvlad" and find_netvlad(model.aggregation) is model.aggregation[0]
    assert isinstance(model.aggregation[1], nn.Linear) and model.aggregation[1].in_features == 64 * 512
    assert find_netvlad(GeoLocalizationNet("resnet18", 8).aggregation) is None


def test_weights_of_another_aggregation_name_the_option() -> None:
    state = GeoLocalizationNet("resnet18", 8, aggregation="mixvpr").state_dict()
    with pytest.raises(CheckpointError, match=r"run/best\.pt: its weights do not fit a resnet18 model with gem "
                                              r"aggregation .*unexpected keys aggregation\.mix.*--aggregation"):
        load_model_state(GeoLocalizationNet("resnet18", 8), state, "run/best.pt")
