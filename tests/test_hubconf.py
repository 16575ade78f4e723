"""hubconf.py: torch.hub.load(REPO, "cosplace_xs", ...) gives a ready model, installed or from a plain clone."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from helpers import write_tiny_checkpoint

from cosplace_xs.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_hub_load_gives_the_checkpoint_model_in_eval_mode(tmp_path) -> None:
    torch.manual_seed(0)
    expected = write_tiny_checkpoint(tmp_path / "run" / "best.pt", model_dim=8, config_dim=8).eval()
    model = torch.hub.load(str(REPO), "cosplace_xs", source="local", checkpoint=str(tmp_path / "run"))
    assert not model.training
    images = torch.randn(2, 3, 32, 40)
    with torch.no_grad():
        assert torch.equal(model(images), expected(images))
    # the same weights as an official state dict
    weights = str(tmp_path / "ResNet18_8_cosplace.pth")
    torch.save(expected.state_dict(), weights)
    official = torch.hub.load(str(REPO), "cosplace_xs", source="local", weights=weights)
    with torch.no_grad():
        assert torch.equal(official(images), expected(images))
    with pytest.raises(ConfigError, match=r"^cosplace_xs\(\): give checkpoint=PATH .* one of them$"):
        torch.hub.load(str(REPO), "cosplace_xs", source="local")


def test_hubconf_puts_src_on_the_path_when_the_package_is_not_installed(tmp_path, monkeypatch) -> None:
    write_tiny_checkpoint(tmp_path / "best.pt", model_dim=8, config_dim=8)
    monkeypatch.setattr(sys, "path", list(sys.path))  # restored after the test
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "cosplace_xs"
                        else find_spec(name, *args))
    model = torch.hub.load(str(REPO), "cosplace_xs", source="local", checkpoint=str(tmp_path / "best.pt"))
    assert sys.path[0] == str(REPO / "src")
    assert not model.training
