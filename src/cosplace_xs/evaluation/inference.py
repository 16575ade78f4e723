"""How a model runs on images: device, precision, batch size, decoding workers, image size, progress.

`Inference.resolve` is the one place where the device and its precision, the automatic number of workers and
the evaluation image size are decided; everything that extracts descriptors receives the resolved object.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

import torch

from cosplace_xs.config import MAX_IMAGE_PIXELS, EvalConfig, InferenceConfig, RunConfig
from cosplace_xs.device import resolve_device, resolve_num_workers, resolve_precision
from cosplace_xs.options import COMMAND_LINE


class NativeSize(enum.Enum):
    """Images are read at their own size, not resized (CosPlace's way for queries)."""

    NATIVE = "native"

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:  # messages name it as a user would write it
        return self.value


NATIVE = NativeSize.NATIVE


@dataclass(frozen=True)
class ShorterSide:
    """Images resized so that their shorter side is `side` pixels, the aspect ratio kept (torchvision's
    Resize(int), the official code's --resize_test_imgs)."""

    side: int

    def __str__(self) -> str:
        return f"shorter side {self.side}"

    def __repr__(self) -> str:  # messages name it as a user would read it
        return str(self)


ImageSize = int | NativeSize | ShorterSide  # a square side in pixels, NATIVE, or a shorter side


@dataclass(frozen=True)
class Inference:
    """Everything that says how images go through a model, resolved: a concrete device, a precision the
    device runs, a number of workers, an explicit image size (pixels or NATIVE)."""

    device: torch.device
    precision: str
    batch_size: int
    num_workers: int
    image_size: ImageSize
    progress: bool = True
    max_pixels: int = MAX_IMAGE_PIXELS

    @classmethod
    def resolve(cls, config: InferenceConfig, image_size: ImageSize, progress: bool) -> Inference:
        """`auto` device: CUDA when present; `auto` precision: device.choose_precision's; workers `None`:
        as many as suit the device (config.AUTO_WORKERS)."""
        device = resolve_device(config.device)
        return cls(device, resolve_precision(config.precision, device), config.batch_size,
                   resolve_num_workers(config.num_workers, device), image_size, progress, config.max_image_pixels)

    @classmethod
    def of_run(cls, config: RunConfig, device: str | torch.device, progress: bool) -> Inference:
        """Validation of a training run on `device` (a distributed run's own one): the run's precision, its
        eval batch size and workers, its evaluation image size."""
        options = InferenceConfig(batch_size=config.eval.batch_size, num_workers=config.eval.num_workers,
                                  device=str(device), precision=config.train.precision,
                                  max_image_pixels=config.train.max_image_pixels)
        return cls.resolve(options, eval_image_size(config), progress)

    def at_size(self, image_size: ImageSize) -> Inference:
        """The same, reading images at `image_size`."""
        return dataclasses.replace(self, image_size=image_size)


def eval_image_size(run: RunConfig, options: InferenceConfig | None = None) -> ImageSize:
    """The evaluation image size: --native-size, --shorter-side or --image-size when given, else the run's
    eval.native_size or eval.shorter_side; the side is --image-size, else the run's eval.image_size, else its
    training image size."""
    given = options.image_size if options is not None else None
    side = given or run.eval.image_size or run.train.image_size
    if options is not None and options.native_size:
        return NATIVE
    if options is not None and options.shorter_side:
        return ShorterSide(side)
    if given is not None:
        return given
    if run.eval.native_size:
        return NATIVE
    return ShorterSide(side) if run.eval.shorter_side else side


def square_side(image_size: ImageSize) -> int | None:
    """The side of the squares a test-time method crops: the size, or the shorter side; None at native size."""
    return image_size.side if isinstance(image_size, ShorterSide) else None if image_size is NATIVE else image_size


def scoring_options(run: RunConfig, given: dict[str, Any]) -> EvalConfig:
    """The eval group of `eval` and `predict`: each option given on the command line, else the checkpoint's
    (the run's own value, which is the default where the run did not set it)."""
    return EvalConfig.build({**dataclasses.asdict(run.eval), **given}, COMMAND_LINE)
