"""Decoding image files into uint8 tensors, with errors that name the file."""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torchvision.transforms.v2.functional as TF
from torchvision.io import ImageReadMode, decode_image, read_file

from cosplace_xs.errors import BadImageError


def read_image(path: str | Path, size: int | None = None) -> torch.Tensor:
    """Decode a JPEG or PNG (sniffed from its bytes, not its extension) to a uint8 RGB tensor (3, H, W).

    With `size`, the image is resized (antialiased) to `size` x `size` unless it already is.
    """
    try:
        if Path(path).stat().st_size == 0:
            raise BadImageError(f"{path}: empty file (0 bytes); re-download it or remove it")
        image = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    except BadImageError:
        raise
    except (RuntimeError, OSError, ValueError) as error:
        reason = re.sub(r"^.*\.cpp:\d+, ", "", str(error)).split(". ")[0]
        raise BadImageError(f"{path}: cannot be decoded as an image ({reason}); re-download or remove it") from None
    if size is not None and tuple(image.shape[-2:]) != (size, size):
        image = TF.resize(image, [size, size], antialias=True)
    return image


def image_problem(path: str | Path) -> str | None:
    """Why an image file cannot be used for training or testing, or None if it decodes fine."""
    try:
        read_image(path)
    except BadImageError as error:
        return str(error)
    return None
