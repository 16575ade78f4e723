"""Descriptor extraction: order kept across size-grouped batches, eval mode, memory-mapped output, errors.

`IndexNet` reads the number an image carries in its first pixel and returns that row of a fixed table, so
the expected descriptors of any image list are known exactly; other test modules import it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cosplace_xs.augment.pipeline import IMAGENET_MEAN, IMAGENET_STD
from cosplace_xs.errors import BadImageError
from cosplace_xs.evaluation.descriptors import extract_descriptors, size_batches
from cosplace_xs.model.network import GeoLocalizationNet

CPU = torch.device("cpu")


def write_index_image(path: Path, index: int, width: int = 16, height: int | None = None) -> Path:
    """A lossless PNG of one colour that encodes `index` (red = index mod 256, green = index div 256)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((height or width, width, 3), dtype=np.uint8)
    pixels[..., 0], pixels[..., 1] = index % 256, index // 256
    Image.fromarray(pixels).save(path, format="PNG")
    return path


class IndexNet(nn.Module):
    """Descriptor of an image = row `index` of `table`, where `index` is what its pixels encode."""

    def __init__(self, table: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("table", torch.from_numpy(table))
        self.batch_shapes: list[tuple[int, ...]] = []
        self.modes: list[bool] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.batch_shapes.append(tuple(images.shape))
        self.modes.append(self.training)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3)
        std = torch.tensor(IMAGENET_STD).view(1, 3)
        pixel = ((images[:, :, 0, 0].float() * std + mean) * 255).round().long()
        return self.table[pixel[:, 0] + 256 * pixel[:, 1]]


def unit_rows(generator: np.random.Generator, count: int, dim: int = 8) -> np.ndarray:
    rows = generator.standard_normal((count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def mixed_sizes(tmp_path: Path) -> list[Path]:
    """Seven images of three sizes, interleaved, each encoding its position in the list."""
    sizes = [(16, 16), (24, 16), (16, 16), (32, 32), (24, 16), (16, 16), (32, 32)]
    return [write_index_image(tmp_path / f"image{i}.png", i, w, h) for i, (w, h) in enumerate(sizes)]


def test_size_batches_group_equal_sizes_and_split_at_the_batch_size(mixed_sizes: list[Path], tmp_path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    batches = size_batches([*mixed_sizes, broken], batch_size=2)
    # 16x16: 0, 2, 5 -> [0, 2], [5]; 24x16: [1, 4]; 32x32: [3, 6]; the unreadable header alone: [7]
    assert batches == [[0, 2], [1, 4], [3, 6], [5], [7]]


def test_native_size_extraction_keeps_the_order_of_the_paths(mixed_sizes: list[Path]) -> None:
    table = unit_rows(np.random.default_rng(0), 7)
    model = IndexNet(table).train()
    descriptors = extract_descriptors(model, mixed_sizes, None, batch_size=2, device=CPU, progress=False)
    np.testing.assert_array_equal(descriptors, table)
    assert sorted(model.batch_shapes) == [(1, 3, 16, 16), (2, 3, 16, 16), (2, 3, 16, 24), (2, 3, 32, 32)]
    assert model.modes == [False] * 4 and model.training  # eval mode while extracting, restored afterwards


def test_fixed_size_extraction_into_a_float16_memory_map(mixed_sizes: list[Path], tmp_path: Path) -> None:
    table = unit_rows(np.random.default_rng(1), 7)
    model = IndexNet(table)
    out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.float16, shape=(7, 8))
    result = extract_descriptors(model, mixed_sizes, 20, batch_size=3, device=CPU, out=out, progress=False)
    assert result is out
    assert model.batch_shapes == [(3, 3, 20, 20), (3, 3, 20, 20), (1, 3, 20, 20)]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), table.astype(np.float16))


def test_geolocalization_net_batched_native_sizes_match_one_at_a_time(tmp_path: Path) -> None:
    sizes = [(32, 32), (48, 32), (32, 32), (64, 64), (48, 32)]
    paths = [write_index_image(tmp_path / f"image{i}.png", 40 * i, w, h) for i, (w, h) in enumerate(sizes)]
    model = GeoLocalizationNet("resnet18", 32)
    batched = extract_descriptors(model, paths, None, batch_size=4, device=CPU, progress=False)  # 3 batches
    single = np.concatenate([extract_descriptors(model, [path], None, batch_size=1, device=CPU, progress=False)
                             for path in paths])
    assert batched.shape == (5, 32) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(batched[0], batched[3])  # different images, different descriptors


@pytest.mark.parametrize("image_size", [None, 16])
def test_unreadable_image_is_named(mixed_sizes: list[Path], tmp_path: Path, image_size: int | None) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated jpeg")
    model = IndexNet(unit_rows(np.random.default_rng(2), 7))
    with pytest.raises(BadImageError, match=r"broken\.jpg: cannot be decoded"):
        extract_descriptors(model, [*mixed_sizes, broken], image_size, batch_size=4, device=CPU, progress=False)
