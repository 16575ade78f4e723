"""Decoding image files: formats sniffed from bytes, resizing, and errors that name the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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
    assert image_problem(tmp_path / "missing.jpg").startswith(f"{tmp_path / 'missing.jpg'}: cannot be decoded")
    assert image_problem(tmp_path / "whole.jpg") is None
