"""--weights: state dicts of the official CosPlace/EigenPlaces network load into ours, for eval, predict and train."""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import INFERENCE_FLAGS, ONE_STEP_FLAGS, run_main, the_error, write_small_dataset, write_test_set
from torch import nn
from torchvision import models

from cosplace_xs.errors import WeightsUnavailableError
from cosplace_xs.evaluation.model_loading import read_published_model
from cosplace_xs.model.network import GeoLocalizationNet
from cosplace_xs.model.published_weights import (
    OFFICIAL_BACKBONES,
    backbone_of_state,
    load_starting_weights,
    read_published_weights,
)
from cosplace_xs.model.state_keys import KeyDifferences

WHAT_WEIGHTS_ARE = ("--weights takes the state dict of a whole CosPlace or EigenPlaces network (keys backbone.0..., "
                    "aggregation.1.p, aggregation.3.weight), as their train.py saves it and their torch.hub releases "
                    "hold it (e.g. ResNet18_512_cosplace.pth)")


class OfficialGeM(nn.Module):
    """cosplace_model/layers.py's GeM: average pooling over the whole map, as the official code computes it."""

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x.clamp(min=1e-6).pow(self.p), (x.size(-2), x.size(-1))).pow(1.0 / self.p)


class OfficialNet(nn.Module):
    """cosplace_network.GeoLocalizationNet for ResNet-18, transcribed: its state dict is the official layout."""

    def __init__(self, fc_output_dim: int) -> None:
        super().__init__()
        self.backbone = nn.Sequential(*list(models.resnet18().children())[:-2])
        self.aggregation = nn.Sequential(nn.Identity(), OfficialGeM(), nn.Flatten(), nn.Linear(512, fc_output_dim),
                                         nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = F.normalize(self.backbone(x), dim=1)
        return F.normalize(self.aggregation(features), dim=1)


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> tuple[OfficialNet, Path]:
    """A random official ResNet-18 network with D = 8 (GeM's p moved off 3), saved as their train.py saves it."""
    torch.manual_seed(3)
    net = OfficialNet(8).eval()
    with torch.no_grad():
        net.aggregation[1].p.fill_(2.5)
    path = tmp_path_factory.mktemp("official") / "ResNet50_2048_cosplace.pth"  # the name says nothing that counts
    torch.save(net.state_dict(), path)
    return net, path


def test_official_state_dict_gives_the_official_descriptors(official) -> None:
    net, path = official
    model, config = read_published_model(path)
    assert (config.model.backbone, config.model.fc_output_dim, config.eval.native_size) == ("resnet18", 8, True)
    images = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        assert torch.allclose(model.eval()(images), net(images), atol=1e-6)
    assert model.aggregation[1].p.item() == 2.5


def test_data_parallel_prefix_and_the_official_last_checkpoint_load_the_same_weights(official, tmp_path) -> None:
    net, _ = official
    state = net.state_dict()
    prefixed = tmp_path / "dp.pth"
    torch.save(OrderedDict((f"module.{key}", value) for key, value in state.items()), prefixed)
    last = tmp_path / "last_checkpoint.pth"
    torch.save({"epoch_num": 3, "model_state_dict": state, "best_val_recall1": 50.0,
                "optimizer_state_dict": torch.optim.Adam(net.parameters()).state_dict()}, last)
    for path in (prefixed, last):
        weights = read_published_weights(path)
        assert (weights.backbone, weights.fc_output_dim) == ("resnet18", 8)
        assert weights.state.keys() == state.keys()
        assert all(torch.equal(weights.state[key], value) for key, value in state.items())


@pytest.mark.parametrize("name", OFFICIAL_BACKBONES)
def test_backbone_is_read_from_the_tensors(name) -> None:
    with torch.device("meta"):
        state = GeoLocalizationNet(name, 64).state_dict()
    assert backbone_of_state(state, 64) == (name, KeyDifferences([], [], []))


def test_a_layout_that_fits_no_backbone_names_the_keys_that_do_not_fit(official, tmp_path) -> None:
    state = {key: value for key, value in official[0].state_dict().items() if not key.startswith("backbone.7.1.")}
    state["extra.weight"] = torch.zeros(2)
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    with pytest.raises(WeightsUnavailableError) as raised:
        read_published_weights(path)
    assert str(raised.value) == (
        f"{path}: fits none of the official networks' backbones (resnet18, resnet50, resnet101, resnet152, vgg16); "
        "against the closest, resnet18 with D=8: missing keys backbone.7.1.conv1.weight, backbone.7.1.bn1.weight, "
        f"backbone.7.1.bn1.bias and 7 more; unexpected keys extra.weight. {WHAT_WEIGHTS_ARE}")


def test_torchvision_classifier_weights_are_told_apart(tmp_path) -> None:
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 512)}, path)
    with pytest.raises(WeightsUnavailableError, match=re.escape(
            "unexpected keys conv1.weight, fc.weight; it looks like torchvision's ImageNet classification weights, "
            "which train takes as --pretrained FILE. --weights takes")):
        read_published_weights(path)


def test_eval_and_predict_run_on_weights_at_native_size(official, tmp_path, capsys) -> None:
    test_set = write_test_set(tmp_path / "test", [(0.0, 0.0), (60.0, 0.0), (120.0, 0.0)], [(2.0, 0.0), (61.0, 0.0)],
                              size=32)
    code, out, err = run_main(["eval", "--weights", str(official[1]), str(test_set), "--out", str(tmp_path / "out"),
                               *INFERENCE_FLAGS], capsys)
    assert code == 0, err
    results = next((tmp_path / "out").glob("eval-*.json")).read_text()
    assert '"image_size": "native"' in results and f'"checkpoint": "{official[1]}"' in results
    photo = next((test_set / "queries").iterdir())
    code, out, err = run_main(["predict", "--weights", str(official[1]), "--database", str(test_set / "database"),
                               str(photo), "--out", str(tmp_path / "predict"), "--k", "2", *INFERENCE_FLAGS], capsys)
    assert code == 0, err
    assert len(out.splitlines()) == 1 + 1 + 1  # header, the photo, where the files are


def test_weights_are_training_starting_point_and_another_descriptor_size_is_refused(official, tmp_path,
                                                                                   capsys) -> None:
    model = GeoLocalizationNet("resnet18", 8)
    load_starting_weights(model, official[1])
    assert all(torch.equal(value, official[0].state_dict()[key]) for key, value in model.state_dict().items())
    assert not model.backbone[0].weight.requires_grad  # the layers before layer3 stay frozen, as without --weights
    # through train's set-up, refused before any image is read
    dataset = write_small_dataset(tmp_path / "ds")
    code, _, err = run_main(["train", str(dataset), "--run-dir", str(tmp_path / "run16"), *ONE_STEP_FLAGS,
                             "--fc-output-dim", "16", "--weights", str(official[1])], capsys)
    assert code == 2
    assert the_error(err) == (
        f"error: --weights {official[1]}: holds a resnet18 network with D=8 and GeM aggregation, and this run builds "
        "a resnet18 with D=16 and gem aggregation; train with --backbone resnet18 --fc-output-dim 8 --aggregation gem")
