"""Shared fixtures: tiny JPEG/PNG files with given names, and the tiny synthetic city."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_image(path: Path, size: int = 32, color: tuple[int, int, int] = (90, 120, 150),
                image_format: str | None = None) -> Path:
    """Write a `size` x `size` image of one colour (plus a gradient, so JPEG has something to code)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 40, size, dtype=np.float32)[None, :, None]
    pixels = np.clip(np.array(color, dtype=np.float32) + ramp, 0, 255).astype(np.uint8)
    Image.fromarray(np.broadcast_to(pixels, (size, size, 3)).copy()).save(
        path, format=image_format or ("PNG" if path.suffix.lower() == ".png" else "JPEG"))
    return path


def image_file_name(east: float, north: float, heading: float | None = None, prefix: str = "",
                    extension: str = ".jpg") -> str:
    """A file name in the datasets' format with exactly these UTM coordinates and heading (zone 10S, rest empty)."""
    return f"{prefix}@{east!r}@{north!r}@10@S@@@@@{'' if heading is None else repr(heading)}@@@@@@{extension}"


@pytest.fixture
def make_image() -> Callable[..., Path]:
    return write_image


@pytest.fixture
def image_name() -> Callable[..., str]:
    return image_file_name


@pytest.fixture(scope="session")
def tiny_city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `tiny` synthetic city (train/, val/, test/, tokyo_xs/test/), generated once per test session."""
    from cosplace_xs.data.synthetic import city_preset, generate_city

    root = tmp_path_factory.mktemp("tiny_city")
    generate_city(root, city_preset("tiny"), progress=False)
    return root
