"""Descriptor extraction: the model's L2-normalised global descriptors of a list of image files.

With a fixed image size every image is resized to it and batched. At native size (CosPlace's way for queries,
which it feeds one at a time because they differ in size) or with the shorter side resized (aspect kept),
images that come out at the same size are batched together: the output keeps the order of `paths` whatever
the batches. A test-time method may instead turn each image, read at its own size, into one square view or
several (evaluation/test_methods.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cosplace_xs.augment import normalize
from cosplace_xs.config import MAX_IMAGE_PIXELS
from cosplace_xs.data.images import read_image, shorter_side_size
from cosplace_xs.data.workers import start_worker
from cosplace_xs.device import autocast
from cosplace_xs.errors import BadImageError
from cosplace_xs.evaluation.inference import NATIVE, ImageSize, Inference, NativeSize, ShorterSide
from cosplace_xs.progress import progress_bar

Views = Callable[[torch.Tensor], torch.Tensor]  # uint8 (3, H, W) -> (3, S, S) or (V, 3, S, S)


class ImageFiles(Dataset):
    """Image files decoded to uint8 (3, H, W): resized to `size` x `size`, to a shorter side (ShorterSide) or
    kept at their own size (NATIVE), or read at their own size and turned into `views`; images above
    `max_pixels` pixels are refused from their header."""

    def __init__(self, paths: Sequence[Path], size: ImageSize, max_pixels: int = MAX_IMAGE_PIXELS,
                 views: Views | None = None) -> None:
        self.paths = list(paths)
        self.size = size
        self.max_pixels = max_pixels
        self.views = views

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.views is not None:
            return self.views(read_image(self.paths[index], None, self.max_pixels)), index
        if isinstance(self.size, ShorterSide):
            return read_image(self.paths[index], self.size.side, self.max_pixels, keep_aspect=True), index
        size = None if self.size is NATIVE else self.size
        return read_image(self.paths[index], size, self.max_pixels), index


EXIF_ORIENTATION = 0x0112
TRANSPOSED = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height


def _header_size(path: Path) -> tuple[int, int] | None:
    """(height, width) of the decoded image from the file header (its EXIF orientation applied), without decoding
    the pixels; None if the header is unreadable."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            transposed = image.getexif().get(EXIF_ORIENTATION) in TRANSPOSED
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return (width, height) if transposed else (height, width)


def size_batches(paths: Sequence[Path], batch_size: int, size: ImageSize = NATIVE) -> list[list[int]]:
    """Batches of indices whose images come out at one size (their own, or with the shorter side resized); an
    unreadable header gets a batch of its own (its decoding then fails with an error naming the file)."""
    by_size: dict[tuple[int, int], list[int]] = {}
    batches = []
    for index, path in enumerate(paths):
        stored = _header_size(path)
        if stored is None:
            batches.append([index])
        else:
            out = shorter_side_size(*stored, size.side) if isinstance(size, ShorterSide) else stored
            by_size.setdefault(out, []).append(index)
    for indices in by_size.values():
        batches += [indices[start:start + batch_size] for start in range(0, len(indices), batch_size)]
    return sorted(batches, key=lambda batch: batch[0])


def _unwrapped(error: BadImageError) -> BadImageError:
    """A decoding worker's error without the worker's traceback, which the DataLoader puts in its message."""
    raised_as = f"{BadImageError.__module__}.{BadImageError.__qualname__}: "
    return BadImageError(str(error).rsplit(raised_as, 1)[-1].strip()) if raised_as in str(error) else error


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode (frozen BatchNorm statistics), its previous mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _loader(dataset: ImageFiles, inference: Inference) -> DataLoader:
    by_size = isinstance(dataset.size, NativeSize | ShorterSide) and dataset.views is None
    batching = ({"batch_sampler": size_batches(dataset.paths, inference.batch_size, dataset.size)} if by_size
                else {"batch_size": inference.batch_size, "shuffle": False})
    # workers ignore Ctrl-C as training's do: the main process stops, not a worker in the middle of a batch
    return DataLoader(dataset, **batching, num_workers=inference.num_workers,
                      pin_memory=inference.device.type == "cuda", persistent_workers=False,
                      worker_init_fn=partial(start_worker, False))


def extract_descriptors(model: nn.Module, paths: Sequence[Path], inference: Inference, desc: str = "database",
                        out: np.ndarray | None = None, views: Views | None = None) -> np.ndarray:
    """Descriptors (len(paths), D) of the images, row i for paths[i]; the model must be on `inference.device`.

    `out`, when given, is filled and returned (e.g. a memory-mapped store, float16 or float32), so a large
    database never sits in memory twice; otherwise a float32 array is allocated. With `views` making V > 1
    views of each image (V, 3, S, S), the descriptors are (len(paths), V, D).
    """
    assert len(paths) > 0, "extraction needs at least one image"
    dataset = ImageFiles(paths, inference.image_size, inference.max_pixels, views)
    device, precision = inference.device, inference.precision
    bar = progress_bar(len(dataset), desc, "img", enabled=inference.progress, leave=False)
    with eval_mode(model), torch.inference_mode(), bar:
        try:
            for images, indices in _loader(dataset, inference):
                # channels_last while still uint8: a quarter of the bytes to move, and normalize keeps the layout
                per_image = images.shape[1:-3]  # (V,) for several views of each image, else ()
                images = images.flatten(0, images.dim() - 4).to(device, non_blocking=True)
                images = images.contiguous(memory_format=torch.channels_last)
                images = normalize(images)
                with autocast(device, precision):
                    descriptors = model(images)
                descriptors = descriptors.float().cpu().numpy().reshape(len(indices), *per_image, -1)
                if out is None:
                    out = np.empty((len(dataset), *descriptors.shape[1:]), dtype=np.float32)
                out[indices.numpy()] = descriptors
                bar.update(len(indices))
        except BadImageError as error:  # only image decoding raises it
            raise _unwrapped(error) from None
    assert out is not None
    return out
