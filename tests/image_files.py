"""Image files that PIL cannot write or that are damaged on purpose, built byte by byte for the tests."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

PNG_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type: grey, grey+alpha, RGB, RGBA


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png16(path: Path, samples: np.ndarray) -> Path:
    """A 16-bit PNG of `samples` (H, W) or (H, W, C) with C in 1-4, written as given (PIL writes only grey)."""
    samples = samples if samples.ndim == 3 else samples[..., None]
    height, width, channels = samples.shape
    rows = b"".join(b"\x00" + samples[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, PNG_COLOR_TYPES[channels], 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows))
                     + _chunk(b"IEND", b""))
    return path


def small_jpeg(size: int = 16) -> bytes:
    """A real JPEG of `size` x `size` noise (so its entropy-coded data is long enough to damage)."""
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_forged_jpeg(path: Path, width: int, height: int) -> Path:
    """A 16 x 16 JPEG whose frame header (SOF0) claims `width` x `height`: a decompression bomb of a few
    hundred bytes."""
    data = bytearray(small_jpeg())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def write_jpeg_with_extraneous_bytes(path: Path) -> Path:
    """A JPEG with two junk bytes before its start-of-scan marker: libjpeg decodes it and only warns
    "Corrupt JPEG data: 2 extraneous bytes before marker 0xda"."""
    data = small_jpeg()
    scan = data.index(b"\xff\xda")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:scan] + b"\x12\x34" + data[scan:])
    return path


def write_jpeg_cut_and_closed(path: Path) -> Path:
    """A JPEG cut inside its scan, then given its end marker: libjpeg fills the rest with grey and only warns
    "Corrupt JPEG data: premature end of data segment"."""
    data = small_jpeg(64)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:len(data) // 2] + b"\xff\xd9")
    return path
