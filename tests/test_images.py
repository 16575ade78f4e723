"""Decoding image files: formats sniffed from bytes, every mode to 8-bit RGB, resizing, and errors that name the
file."""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from image_files import write_forged_jpeg, write_png16
from PIL import Image, ImageOps

from cosplace_xs.data.images import image_problem, read_image
from cosplace_xs.errors import BadImageError


def test_a_jpeg_decodes_to_uint8_rgb_of_its_own_size(tmp_path: Path, make_image) -> None:
    image = read_image(make_image(tmp_path / "a.jpg", size=40, color=(200, 10, 10)))
    assert image.shape == (3, 40, 40) and image.dtype == torch.uint8
    assert abs(int(image[0, 20, 0]) - 200) <= 4 and int(image[1, 20, 0]) <= 15  # red stays red


def test_size_resizes_unless_the_image_already_has_it(tmp_path: Path, make_image) -> None:
    path = make_image(tmp_path / "a.png", size=48, color=(0, 100, 0))
    assert read_image(path, size=16).shape == (3, 16, 16)
    assert torch.equal(read_image(path, size=48), read_image(path))


def test_a_png_named_jpg_decodes_by_its_bytes(tmp_path: Path, make_image) -> None:
    path = make_image(tmp_path / "a.jpg", size=32, color=(10, 20, 30), image_format="PNG")
    assert path.read_bytes().startswith(b"\x89PNG")
    assert read_image(path)[:, 0, 0].tolist() == [10, 20, 30]  # PNG is lossless


def test_empty_truncated_and_foreign_files_name_the_file(tmp_path: Path, make_image) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    whole = make_image(tmp_path / "whole.jpg", size=64).read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(whole[: len(whole) // 2])
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    with pytest.raises(BadImageError, match=f"{empty}: empty file"):
        read_image(empty)
    with pytest.raises(BadImageError, match=f"{truncated}: cannot be decoded as an image .*truncated"):
        read_image(truncated)
    assert image_problem(text).startswith(f"{text}: cannot be decoded as an image")
    assert image_problem(tmp_path / "missing.jpg") == \
        f"{tmp_path / 'missing.jpg'}: cannot be read (No such file or directory); check the path and its permissions"
    assert image_problem(tmp_path / "whole.jpg") is None


GREY16 = np.array([[65535, 32768], [0, 257]], dtype=np.uint16)
GREY16_AS_8 = [[255, 128], [0, 1]]  # round(v * 255 / 65535)


def test_a_16_bit_grey_png_is_scaled_65535_to_255(tmp_path: Path) -> None:
    image = read_image(write_png16(tmp_path / "grey16.png", GREY16))
    assert image.dtype == torch.uint8
    assert image.tolist() == [GREY16_AS_8] * 3


def test_a_16_bit_rgb_or_rgba_png_is_scaled_per_channel_and_loses_its_alpha(tmp_path: Path) -> None:
    rgb = np.stack([GREY16, GREY16 // 2, 65535 - GREY16], axis=-1)
    expected = [GREY16_AS_8, [[127, 64], [0, 0]], [[0, 127], [255, 254]]]  # 32767 -> 127.498
    assert read_image(write_png16(tmp_path / "rgb16.png", rgb)).tolist() == expected
    rgba = np.concatenate([rgb, np.zeros_like(GREY16)[..., None]], axis=-1)  # fully transparent
    assert read_image(write_png16(tmp_path / "rgba16.png", rgba)).tolist() == expected


def test_a_16_bit_png_resizes_like_any_image(tmp_path: Path) -> None:
    """Resizing a uint16 tensor failed ("Promotion for uint16 ... not supported"): samples are 8-bit first."""
    path = write_png16(tmp_path / "grey16.png", np.full((8, 8), 32768, dtype=np.uint16))
    assert read_image(path, size=4).tolist() == [[[128] * 4] * 4] * 3


@pytest.mark.parametrize(("mode", "pixel", "expected"), [
    ("RGBA", (10, 20, 30, 0), [10, 20, 30]),  # alpha dropped: a transparent pixel keeps its stored colour
    ("LA", (77, 0), [77, 77, 77]),
    ("L", 200, [200, 200, 200]),
    ("1", 1, [255, 255, 255]),
])
def test_every_png_mode_becomes_8_bit_rgb(tmp_path: Path, mode: str, pixel, expected: list[int]) -> None:
    path = tmp_path / f"{mode}.png"
    Image.new(mode, (3, 2), pixel).save(path)
    assert read_image(path).tolist() == [[[value] * 3] * 2 for value in expected]


def test_a_palette_png_becomes_its_palette_colours(tmp_path: Path) -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 250, 100, 5] + [0] * 762)
    image.putpixel((1, 0), 1)
    image.save(tmp_path / "palette.png")
    assert read_image(tmp_path / "palette.png").tolist() == [[[0, 250]], [[0, 100]], [[0, 5]]]


def test_a_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    Image.new("CMYK", (16, 16), (255, 0, 0, 0)).save(tmp_path / "cyan.jpg", quality=100)
    assert read_image(tmp_path / "cyan.jpg")[:, 8, 8].tolist() == [0, 255, 255]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_exif_orientation_of_a_jpeg_is_applied_as_pil_does(tmp_path: Path, orientation: int) -> None:
    pixels = np.random.default_rng(orientation).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.jpg"
    Image.fromarray(pixels).save(path, exif=exif)
    with Image.open(path) as original:
        expected = torch.from_numpy(np.array(ImageOps.exif_transpose(original).convert("RGB"))).permute(2, 0, 1)
    image = read_image(path)
    assert image.shape == ((3, 16, 24) if orientation <= 4 else (3, 24, 16))
    assert torch.equal(image, expected)


def test_a_forged_header_is_refused_before_any_pixel_is_allocated(tmp_path: Path) -> None:
    bomb = write_forged_jpeg(tmp_path / "bomb.jpg", 30000, 30000)
    assert bomb.stat().st_size < 1000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    message = (f"{bomb}: 30000 x 30000 pixels (900.0 megapixels), above the limit of 40 megapixels (a decompression "
               "bomb or a huge image); downscale it, remove it, or raise --max-image-pixels")
    with pytest.raises(BadImageError) as refused:
        read_image(bomb)
    assert str(refused.value) == message
    assert image_problem(bomb) == message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 100_000  # 2.7 GB were never allocated
    small = write_forged_jpeg(tmp_path / "small.jpg", 100, 100)
    assert image_problem(small, max_pixels=9999).startswith(f"{small}: 100 x 100 pixels (0.0 megapixels), above "
                                                            "the limit of 0.009999 megapixels")


def test_a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    problems: list[str | None] = []
    reader = threading.Thread(target=lambda: problems.append(image_problem(fifo)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "reading a FIFO waited for a writer"
    assert problems == [f"{fifo}: a FIFO (named pipe), not an image file; remove it or give the image itself"]
