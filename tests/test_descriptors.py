"""Descriptor extraction: order kept across size-grouped batches, eval mode, memory-mapped output, errors."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from helpers import CPU, IndexNet, on_cpu, unit_rows, write_index_image
from PIL import Image

from cosplace_xs.data.images import read_image
from cosplace_xs.errors import BadImageError
from cosplace_xs.evaluation.descriptors import _loader, extract_descriptors, size_batches
from cosplace_xs.evaluation.inference import NATIVE, ImageSize, Inference, ShorterSide
from cosplace_xs.model.network import GeoLocalizationNet


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
    descriptors = extract_descriptors(model, mixed_sizes, on_cpu(NATIVE, 2))
    np.testing.assert_array_equal(descriptors, table)
    assert sorted(model.batch_shapes) == [(1, 3, 16, 16), (2, 3, 16, 16), (2, 3, 16, 24), (2, 3, 32, 32)]
    assert model.modes == [False] * 4 and model.training  # eval mode while extracting, restored afterwards


def test_fixed_size_extraction_into_a_float16_memory_map(mixed_sizes: list[Path], tmp_path: Path) -> None:
    table = unit_rows(np.random.default_rng(1), 7)
    model = IndexNet(table)
    out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.float16, shape=(7, 8))
    result = extract_descriptors(model, mixed_sizes, on_cpu(20, 3), out=out)
    assert result is out
    assert model.batch_shapes == [(3, 3, 20, 20), (3, 3, 20, 20), (1, 3, 20, 20)]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), table.astype(np.float16))


def test_shorter_side_keeps_the_aspect_and_batches_by_the_size_it_gives(mixed_sizes: list[Path]) -> None:
    # stored (w x h) 16x16, 24x16, 32x32 -> shorter side 12: 12x12, 18x12, 12x12 (16x16 and 32x32 share a batch)
    table = unit_rows(np.random.default_rng(2), 7)
    model = IndexNet(table)
    np.testing.assert_array_equal(extract_descriptors(model, mixed_sizes, on_cpu(ShorterSide(12), 2)), table)
    assert sorted(model.batch_shapes) == [(1, 3, 12, 12), (2, 3, 12, 12), (2, 3, 12, 12), (2, 3, 12, 18)]
    assert size_batches(mixed_sizes, 4, ShorterSide(12)) == [[0, 2, 3, 5], [1, 4], [6]]


def test_shorter_side_reading_is_torchvisions_resize_of_an_int(tmp_path: Path) -> None:
    generator = np.random.default_rng(3)
    for width, height in ((40, 30), (30, 45), (33, 33)):
        path = tmp_path / f"{width}x{height}.png"
        Image.fromarray(generator.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
        stored = read_image(path)
        expected = TF.resize(stored, 20, antialias=True)  # torchvision: shorter side 20, the longer one truncated
        assert torch.equal(read_image(path, 20, keep_aspect=True), expected)
    assert read_image(tmp_path / "40x30.png", 20, keep_aspect=True).shape == (3, 20, 26)  # int(20 * 40 / 30)


def test_an_exif_rotated_photo_batches_with_images_of_its_decoded_size(tmp_path: Path) -> None:
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: stored 24 wide x 16 high, decoded 16 wide x 24 high
    Image.new("RGB", (24, 16), (100, 0, 0)).save(rotated, exif=exif)
    upright = write_index_image(tmp_path / "upright.png", 0, 16, 24)
    assert size_batches([rotated, upright], 2) == [[0, 1]]
    model = IndexNet(unit_rows(np.random.default_rng(4), 65536))  # any colour the JPEG decodes to
    extract_descriptors(model, [rotated, upright], on_cpu(NATIVE, 2))
    assert model.batch_shapes == [(2, 3, 24, 16)]


def test_geolocalization_net_batched_native_sizes_match_one_at_a_time(tmp_path: Path) -> None:
    sizes = [(32, 32), (48, 32), (32, 32), (64, 64), (48, 32)]
    paths = [write_index_image(tmp_path / f"image{i}.png", 40 * i, w, h) for i, (w, h) in enumerate(sizes)]
    model = GeoLocalizationNet("resnet18", 32)
    batched = extract_descriptors(model, paths, on_cpu(NATIVE, 4))  # 3 batches
    single = np.concatenate([extract_descriptors(model, [path], on_cpu(NATIVE, 1))
                             for path in paths])
    assert batched.shape == (5, 32) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(batched[0], batched[3])  # different images, different descriptors


@pytest.mark.parametrize("image_size", [pytest.param(NATIVE, id="native"), 16])
def test_unreadable_image_is_named(mixed_sizes: list[Path], tmp_path: Path, image_size: ImageSize) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated jpeg")
    model = IndexNet(unit_rows(np.random.default_rng(2), 7))
    with pytest.raises(BadImageError, match=r"broken\.jpg: cannot be decoded"):
        extract_descriptors(model, [*mixed_sizes, broken], on_cpu(image_size, 4))


class SigintHandlers(torch.utils.data.Dataset):
    """Reports, from the process that loads item i, whether that process ignores SIGINT."""

    def __init__(self, count: int) -> None:
        self.paths = [Path(f"{i}.png") for i in range(count)]
        self.size = 16

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[bool, int]:
        return signal.getsignal(signal.SIGINT) == signal.SIG_IGN, index


def test_decoding_workers_ignore_ctrl_c() -> None:
    # Ctrl-C reaches the whole process group: a worker that died of it would end the main process's clean stop
    # in "DataLoader worker exited unexpectedly". Python's own handler is set first: a test process started in
    # the background by a shell inherits SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        loader = _loader(SigintHandlers(3), Inference(CPU, "fp32", 2, 1, 16, progress=False))
        ignored = [bool(flag) for flags, _ in loader for flag in flags]
        assert ignored == [True, True, True]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the main process still stops
    finally:
        signal.signal(signal.SIGINT, previous)


def test_progress_off_a_terminal_is_a_log_line(mixed_sizes: list[Path], caplog: pytest.LogCaptureFixture) -> None:
    model = IndexNet(unit_rows(np.random.default_rng(1), 7))
    with caplog.at_level(logging.INFO, logger="cosplace_xs.progress"):
        extract_descriptors(model, mixed_sizes[:3], Inference(CPU, "fp32", 2, 0, 16, progress=True), "queries")
    assert [record.getMessage().split(" (")[0] for record in caplog.records] == ["queries: 3/3 img"]
