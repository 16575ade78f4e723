"""GeoLocalizationNet: descriptor shape and norm for every backbone, frozen layers, precision, checkpoint keys."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from cosplace_xs.config import ModelConfig
from cosplace_xs.errors import CheckpointError
from cosplace_xs.model.backbones import BACKBONES
from cosplace_xs.model.network import GeoLocalizationNet, build_model, load_model_state


@pytest.fixture(scope="module")
def net() -> Callable[[str, int], GeoLocalizationNet]:
    """Each (backbone, D) built once for the module: the deep ones take a while to initialise."""
    built: dict[tuple[str, int], GeoLocalizationNet] = {}

    def get(backbone: str, dim: int) -> GeoLocalizationNet:
        if (backbone, dim) not in built:
            built[backbone, dim] = GeoLocalizationNet(backbone, dim).eval()
        return built[backbone, dim]

    return get


def images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# resnet101 and resnet152 differ from resnet50 only in depth: their shapes are checked on the meta device below
@pytest.mark.parametrize("backbone", ["resnet18", "resnet50", "vgg16"])
def test_descriptors_are_b_by_d_and_unit_norm(net, backbone) -> None:
    with torch.no_grad():
        descriptors = net(backbone, 64)(images(2, 3, 32, 32))
    assert descriptors.shape == (2, 64) and descriptors.dtype == torch.float32
    assert torch.isfinite(descriptors).all()
    torch.testing.assert_close(descriptors.norm(dim=1), torch.ones(2))


@pytest.mark.parametrize("backbone", list(BACKBONES))
@pytest.mark.parametrize("dim", [64, 512])
def test_descriptor_shape_for_each_size(backbone, dim) -> None:
    with torch.device("meta"):  # shapes only, so the deep backbones cost nothing to build twice
        model = GeoLocalizationNet(backbone, dim)
        assert model(torch.empty(2, 3, 40, 32)).shape == (2, dim)


@pytest.mark.parametrize("size", [(32, 32), (48, 80), (64, 64)])
def test_any_input_size_of_at_least_32_pixels(net, size) -> None:
    with torch.no_grad():
        descriptors = net("resnet18", 64)(images(2, 3, *size))
    assert descriptors.shape == (2, 64)


def test_state_dict_keys_match_cosplace() -> None:
    keys = list(GeoLocalizationNet("resnet18", 8).state_dict())
    assert keys[:3] == ["backbone.0.weight", "backbone.1.weight", "backbone.1.bias"]
    assert keys[-3:] == ["aggregation.1.p", "aggregation.3.weight", "aggregation.3.bias"]
    assert "backbone.7.1.conv2.weight" in keys  # layer4, block 1


def test_aggregation_is_l2norm_gem_flatten_linear_l2norm(net) -> None:
    aggregation = net("resnet50", 64).aggregation
    assert [type(m).__name__ for m in aggregation] == ["L2Norm", "GeM", "Flatten", "Linear", "L2Norm"]
    assert aggregation[3].in_features == 2048 and aggregation[3].out_features == 64


def test_descriptor_is_the_normalised_linear_of_gem_of_normalised_features(net) -> None:
    model = net("resnet18", 64)
    x = images(1, 3, 64, 64)
    with torch.no_grad():
        features = model.backbone(x)  # (1, 512, 2, 2)
        unit = features / features.norm(dim=1, keepdim=True)
        pooled = unit.clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1 / 3)
        projected = model.aggregation[3](pooled)
        torch.testing.assert_close(model(x), projected / projected.norm(dim=1, keepdim=True))


def test_frozen_layers_get_no_gradient_but_their_batchnorm_statistics_update() -> None:
    model = GeoLocalizationNet("resnet18", 16).train()
    frozen_bn = model.backbone[1]  # bn1, before layer3: frozen like CosPlace, still in train mode
    before = frozen_bn.running_mean.clone()
    model(images(2, 3, 32, 32)).sum().backward()
    assert frozen_bn.weight.grad is None and model.backbone[0].weight.grad is None
    assert model.backbone[6][0].conv1.weight.grad is not None and model.aggregation[1].p.grad is not None
    assert not torch.equal(frozen_bn.running_mean, before)


def test_train_all_layers_trains_the_whole_network() -> None:
    model = GeoLocalizationNet("resnet18", 16, train_all_layers=True)
    assert all(p.requires_grad for p in model.parameters())


def test_channels_last_and_bf16_autocast_match_fp32(net) -> None:
    model = net("resnet18", 64)
    x = images(2, 3, 48, 48, seed=3)
    with torch.inference_mode():
        reference = model(x)
        last = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x.contiguous(memory_format=torch.channels_last))
        model.to(memory_format=torch.contiguous_format)
    torch.testing.assert_close(last, reference, rtol=1e-4, atol=1e-5)
    assert torch.isfinite(low).all()
    torch.testing.assert_close(low.float().norm(dim=1), torch.ones(2), rtol=0, atol=1e-2)
    assert (low.float() * reference).sum(dim=1).min() > 0.99  # cosine between bf16 and fp32 descriptors


def test_build_model_without_pretrained_weights_never_downloads(monkeypatch) -> None:
    def no_network(*args, **kwargs) -> None:
        raise AssertionError("tried to download weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    model = build_model(ModelConfig(backbone="resnet18", fc_output_dim=32, train_all_layers=True, pretrained="none"))
    assert model.fc_output_dim == 32 and model.backbone_name == "resnet18"
    assert all(p.requires_grad for p in model.parameters())


def test_load_model_state_restores_every_weight() -> None:
    source, target = GeoLocalizationNet("resnet18", 8), GeoLocalizationNet("resnet18", 8)
    with torch.no_grad():
        source.aggregation[1].p.fill_(4.5)
    load_model_state(target, source.state_dict(), "run/best.pt")
    assert target.aggregation[1].p.item() == 4.5
    assert torch.equal(target.backbone[0].weight, source.backbone[0].weight)


def test_checkpoint_of_another_descriptor_size_names_the_file_and_the_shapes() -> None:
    state = GeoLocalizationNet("resnet18", 16).state_dict()
    with pytest.raises(CheckpointError, match=r"run/last\.pt.*resnet18.*D=8.*aggregation\.3\.weight \(16, 512\) "
                                              r"instead of \(8, 512\).*--fc-output-dim"):
        load_model_state(GeoLocalizationNet("resnet18", 8), state, "run/last.pt")


def test_checkpoint_of_another_backbone_names_the_keys(net) -> None:
    state = net("resnet50", 64).state_dict()
    with pytest.raises(CheckpointError, match=r"old\.pt.*unexpected keys backbone\.4\.0\.conv3\.weight.*--backbone"):
        load_model_state(GeoLocalizationNet("resnet18", 64), state, "old.pt")


def test_model_weights_that_are_not_a_state_dict() -> None:
    with pytest.raises(CheckpointError, match=r"x\.pt: its model weights are a list"):
        load_model_state(GeoLocalizationNet("resnet18", 8), [], "x.pt")
