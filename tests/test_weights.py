"""Pretrained weights: torch.hub's cache, a state dict file, and clear errors when they cannot be had (no network)."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from torchvision import models

from cosplace_xs.config import ModelConfig
from cosplace_xs.errors import WeightsUnavailableError
from cosplace_xs.model.backbones import backbone_spec, resnet_layers
from cosplace_xs.model.network import GeoLocalizationNet, build_model
from cosplace_xs.model.weights import DOWNLOAD_TIMEOUT_S, hub_weights_path

RESNET_NAMES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")  # backbone.<index>
REMEDIES = r"go online.*--pretrained PATH.*--no-pretrained"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[float | None]:
    """An empty torch.hub cache under tmp_path and a downloader that fails like a machine without network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    timeouts: list[float | None] = []

    def unreachable(url: str, dst: str, *args, **kwargs) -> None:
        timeouts.append(socket.getdefaulttimeout())
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)
    return timeouts


@pytest.fixture(scope="module")
def resnet18_state() -> dict[str, torch.Tensor]:
    """A torchvision ResNet-18 state dict with random weights (only where they land matters)."""
    return models.resnet18().state_dict()


def assert_backbone_holds(model: GeoLocalizationNet, state: dict[str, torch.Tensor]) -> None:
    backbone_state = model.backbone.state_dict()
    for key, value in backbone_state.items():
        index, rest = key.split(".", 1)
        assert torch.equal(value, state[f"{RESNET_NAMES[int(index)]}.{rest}"]), key
    assert len(backbone_state) == len([k for k in state if not k.startswith("fc.")])


def test_hub_cache_path_is_torch_home_hub_checkpoints(tmp_path) -> None:
    expected = tmp_path / "torch_home" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert hub_weights_path(backbone_spec("resnet18")) == expected


def test_imagenet_weights_load_from_the_hub_cache_without_network(resnet18_state, offline) -> None:
    path = hub_weights_path(backbone_spec("resnet18"))
    path.parent.mkdir(parents=True)
    torch.save(resnet18_state, path)
    model = build_model(ModelConfig(backbone="resnet18", fc_output_dim=16, pretrained="imagenet"))
    assert_backbone_holds(model, resnet18_state)
    assert offline == []  # no download tried
    # loading keeps the freezing: 30 tensors before layer3 stay frozen
    assert sum(not p.requires_grad for p in model.parameters()) == 30


def test_weights_from_a_state_dict_file(resnet18_state, tmp_path) -> None:
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(resnet18_state, path)
    model = build_model(ModelConfig(backbone="resnet18", fc_output_dim=16, train_all_layers=True,
                                    pretrained=str(path)))
    assert_backbone_holds(model, resnet18_state)
    assert all(p.requires_grad for p in model.parameters())


def test_file_older_than_batchnorm_counters_loads(resnet18_state, tmp_path) -> None:
    path = tmp_path / "old.pth"
    torch.save({k: v for k, v in resnet18_state.items() if not k.endswith("num_batches_tracked")}, path)
    model = build_model(ModelConfig(backbone="resnet18", fc_output_dim=16, pretrained=str(path)))
    assert torch.equal(model.backbone[7][1].bn2.running_var, resnet18_state["layer4.1.bn2.running_var"])


def test_state_dict_with_wrong_keys_names_the_file_and_keys(resnet18_state, tmp_path) -> None:
    state = dict(resnet18_state)
    state["classifier.weight"] = state.pop("fc.weight")
    path = tmp_path / "renamed.pth"
    torch.save(state, path)
    with pytest.raises(WeightsUnavailableError, match=rf"renamed\.pth.*resnet18.*missing keys fc\.weight; "
                                                      rf"unexpected keys classifier\.weight.*{REMEDIES}"):
        build_model(ModelConfig(backbone="resnet18", pretrained=str(path)))


def test_weights_of_another_backbone_are_refused(resnet18_state, tmp_path) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18_state, path)
    pattern = (r"resnet18\.pth: is not a state dict of torchvision's resnet50.*"
               r"wrong shapes layer1\.0\.conv1\.weight \(64, 64, 3, 3\) instead of \(64, 64, 1, 1\)")
    with pytest.raises(WeightsUnavailableError, match=pattern):
        build_model(ModelConfig(backbone="resnet50", pretrained=str(path)))


def test_missing_file(tmp_path) -> None:
    with pytest.raises(WeightsUnavailableError, match=rf"--pretrained .*nope\.pth: no such file.*{REMEDIES}"):
        build_model(ModelConfig(pretrained=str(tmp_path / "nope.pth")))


def test_corrupt_file(tmp_path) -> None:
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailableError, match=rf"broken\.pth: cannot be read as a state dict.*{REMEDIES}"):
        build_model(ModelConfig(pretrained=str(path)))


def test_file_that_is_not_a_state_dict(tmp_path) -> None:
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(WeightsUnavailableError, match=r"list\.pth: holds a list, not a state dict"):
        build_model(ModelConfig(pretrained=str(path)))


def test_offline_without_cache_is_an_error_naming_every_way_out(offline) -> None:
    path = hub_weights_path(backbone_spec("vgg16"))
    with pytest.raises(WeightsUnavailableError) as caught:
        build_model(ModelConfig(backbone="vgg16", pretrained="imagenet"))
    message = str(caught.value)
    assert "Name or service not known" in message
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message
    assert str(path) in message and "--pretrained PATH" in message and "--no-pretrained" in message
    assert offline == [DOWNLOAD_TIMEOUT_S]  # a bounded wait while downloading
    assert socket.getdefaulttimeout() is None  # and restored afterwards
    assert list(path.parent.iterdir()) == []  # nothing half-written in the cache


def test_damaged_cache_file_says_to_delete_it(offline) -> None:
    path = hub_weights_path(backbone_spec("resnet18"))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsUnavailableError, match=rf"{path.name}.*delete it.*{REMEDIES}"):
        build_model(ModelConfig(pretrained="imagenet"))
    assert offline == []


def test_no_pretrained_reads_nothing(offline) -> None:
    build_model(ModelConfig(fc_output_dim=8, pretrained="none"))
    assert offline == []


def test_vgg16_keys_map_to_the_cut_features() -> None:
    spec = backbone_spec("vgg16")
    with torch.device("meta"):
        classifier = spec.constructor()
    cut = spec.features(classifier, train_all_layers=True).state_dict()
    kept = {k.removeprefix("features.") for k in classifier.state_dict()
            if k.startswith("features.") and int(k.split(".")[1]) <= 28}
    assert set(cut) == kept and "28.weight" in cut  # conv5_3 is the last layer kept


def test_resnet_cut_takes_the_named_children_in_order() -> None:
    with torch.device("meta"):
        classifier = models.resnet18()
    assert resnet_layers(classifier) == [getattr(classifier, name) for name in RESNET_NAMES]
