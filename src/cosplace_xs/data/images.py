"""Decoding image files into uint8 RGB tensors, the same way for every command, with errors that name the file.

Every supported image becomes 8-bit RGB: 16-bit PNGs are scaled (65535 -> 255), grey, palette, 1-bit and CMYK
images are converted, an alpha channel is dropped (a transparent pixel keeps the colour stored under it) and the
EXIF orientation is applied, as PIL's `ImageOps.exif_transpose` does. The header is read before any pixel is, so
an image above `max_pixels` (option --max-image-pixels; a decompression bomb: a few bytes that decode to
gigabytes) is refused without allocating it.
"""

from __future__ import annotations

import io
import os
import re
import stat
import struct
from pathlib import Path

import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torchvision.io import ImageReadMode, decode_image

from cosplace_xs.config import MAX_IMAGE_PIXELS, TrainConfig
from cosplace_xs.errors import BadImageError
from cosplace_xs.options import flag_of

FILE_TYPES = {stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device",
              stat.S_ISBLK: "a block device", stat.S_ISDIR: "a folder"}
JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0-SOF15 (not DHT, JPG, DAC)
JPEG_BARE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RST0-7, SOI: no length field


def special_file_kind(mode: int) -> str | None:
    """What a non-regular file is ("a FIFO (named pipe)", ...), from its `st_mode`; None for a regular file."""
    return next((kind for test, kind in FILE_TYPES.items() if test(mode)), None if stat.S_ISREG(mode) else
                "not a regular file")


def _open_without_blocking(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NONBLOCK)  # opening a FIFO must not wait for a writer


def read_image_file(path: str | Path) -> bytes:
    """The bytes of an image file; BadImageError for a missing, special (FIFO, socket, device) or empty file.

    OSError (e.g. PermissionError) is left to the caller, which knows whether it reports or raises."""
    with open(path, "rb", opener=_open_without_blocking) as file:
        kind = special_file_kind(os.fstat(file.fileno()).st_mode)
        if kind is not None:
            raise BadImageError(f"{path}: {kind}, not an image file; remove it or give the image itself")
        data = file.read()
    if not data:
        raise BadImageError(f"{path}: empty file (0 bytes); re-download it or remove it")
    return data


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header (SOFn), walking the marker segments; None if not reached."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in JPEG_BARE_MARKERS:
            position += 2
            continue
        if marker in JPEG_FRAME_MARKERS:
            if position + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            return width, height
        if marker == 0xDA:  # start of scan before any frame header
            return None
        position += 2 + struct.unpack(">H", data[position + 2:position + 4])[0]
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from the header of an encoded image, without decoding it; None if unreadable.

    JPEG and PNG headers are read here; PIL reads the others (and refuses beyond its own bomb limit)."""
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def check_pixels(path: str | Path, data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """BadImageError if the header of `data` declares more than `max_pixels` pixels (nothing is decoded)."""
    size = image_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        width, height = size
        raise BadImageError(
            f"{path}: {width} x {height} pixels ({width * height / 1e6:.1f} megapixels), above the limit of "
            f"{max_pixels / 1e6:g} megapixels (a decompression bomb or a huge image); downscale it, remove it, "
            f"or raise {flag_of(TrainConfig, 'max_image_pixels')}")


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    """16-bit samples (PNG) to 8-bit, rounded: 65535 -> 255, 32768 -> 128, 257 * k -> k."""
    if image.dtype == torch.uint8:
        return image
    assert image.dtype == torch.uint16, image.dtype
    return ((image.to(torch.int32) * 255 + 32767) // 65535).to(torch.uint8)


def decode(path: str | Path, data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> torch.Tensor:
    """Decode the bytes of an image file (format sniffed from the bytes) to uint8 RGB (3, H, W)."""
    check_pixels(path, data, max_pixels)
    try:
        image = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB,
                             apply_exif_orientation=True)
    except (RuntimeError, ValueError) as error:
        reason = re.sub(r"^.*\.cpp:\d+, ", "", str(error)).split(". ")[0]
        raise BadImageError(f"{path}: cannot be decoded as an image ({reason}); re-download or remove it") from None
    return _to_uint8(image)


def shorter_side_size(height: int, width: int, side: int) -> tuple[int, int]:
    """(height, width) with the shorter side `side` and the aspect ratio kept, as torchvision's Resize(side)."""
    if height <= width:
        return side, int(side * width / height)
    return int(side * height / width), side


def read_image(path: str | Path, size: int | None = None, max_pixels: int = MAX_IMAGE_PIXELS,
               keep_aspect: bool = False) -> torch.Tensor:
    """Decode a JPEG or PNG (sniffed from its bytes, not its extension) to a uint8 RGB tensor (3, H, W).

    With `size`, the image is resized (antialiased) to `size` x `size` unless it already is, or with
    `keep_aspect` so that its shorter side is `size`. Images above `max_pixels` pixels are refused from their
    header.
    """
    try:
        data = read_image_file(path)
    except OSError as error:
        raise BadImageError(f"{path}: cannot be read ({error.strerror or error}); check the path and its "
                            "permissions") from None
    image = decode(path, data, max_pixels)
    if size is None:
        return image
    target = shorter_side_size(*image.shape[-2:], size) if keep_aspect else (size, size)
    return image if tuple(image.shape[-2:]) == target else TF.resize(image, list(target), antialias=True)


def image_problem(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> str | None:
    """Why an image file cannot be used for training or testing, or None if it decodes fine."""
    try:
        read_image(path, max_pixels=max_pixels)
    except BadImageError as error:
        return str(error)
    return None
