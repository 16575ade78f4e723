"""Helpers the test modules share: the flags of a tiny training run, a small dataset of four classes, images that
encode a number, a model that reads it back, dataset-format test sets of such images, tiny checkpoints, and
running one command module as `cosplace-xs` would.

`IndexNet` reads the number an image carries in its first pixel and returns that row of a fixed table, so the
expected descriptors of any image list are known exactly.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import utm
from PIL import Image
from torch import nn

from cosplace_xs.augment.pipeline import IMAGENET_MEAN, IMAGENET_STD
from cosplace_xs.checkpoints import write_checkpoint
from cosplace_xs.config import RunConfig
from cosplace_xs.data.names import ImageName, format_name
from cosplace_xs.evaluation.inference import NATIVE, ImageSize, Inference
from cosplace_xs.model.network import GeoLocalizationNet

CPU = torch.device("cpu")

# a CPU run that trains and validates in seconds: one epoch of one batch, a 32-pixel ResNet-18 with D = 8
TINY_RUN_FLAGS = ("--device", "cpu", "--no-pretrained", "--image-size", "32", "--epochs", "1",
                  "--iterations-per-epoch", "1", "--checkpoint-every", "0", "--num-workers", "0", "--groups-num", "1",
                  "--fc-output-dim", "8", "--eval-batch-size", "8", "--eval-num-workers", "0", "--no-progress")
# ... on the small dataset below: a batch of 2 of its 4 classes
ONE_STEP_FLAGS = (*TINY_RUN_FLAGS, "--batch-size", "2", "--min-images-per-class", "1")
INFERENCE_FLAGS = ("--device", "cpu", "--num-workers", "0", "--no-progress")
SMALL_TRAIN_IMAGES = 8


def image_file_name(east: float, north: float, heading: float | None = None, prefix: str = "",
                    extension: str = ".jpg") -> str:
    """A file name in the datasets' format with exactly these UTM coordinates and heading (zone 10S, rest empty)."""
    return f"{prefix}@{east!r}@{north!r}@10@S@@@@@{'' if heading is None else repr(heading)}@@@@@@{extension}"


def write_image(path: Path, size: int = 32, color: tuple[int, int, int] = (90, 120, 150),
                image_format: str | None = None) -> Path:
    """Write a `size` x `size` image of one colour (plus a gradient, so JPEG has something to code)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 40, size, dtype=np.float32)[None, :, None]
    pixels = np.clip(np.array(color, dtype=np.float32) + ramp, 0, 255).astype(np.uint8)
    Image.fromarray(np.broadcast_to(pixels, (size, size, 3)).copy()).save(
        path, format=image_format or ("PNG" if path.suffix.lower() == ".png" else "JPEG"))
    return path


def write_small_dataset(root: Path, train_folder: str = "train/a", test_sets: tuple[str, ...] = ("val",)) -> Path:
    """`train_folder`: 4 classes (cells 50 m apart, heading 0: one group) of 2 images, SMALL_TRAIN_IMAGES in all;
    each test set: database images at east 0, 50 and 100 m, queries at 1 and 51 m (the nearest pair 1 m apart)."""
    for east in (0.0, 50.0, 100.0, 150.0):
        for offset in (1.0, 2.0):
            write_image(root / train_folder / image_file_name(east + offset, 0.0, 0.0), color=(int(east), 60, 90))
    for name in test_sets:
        for east in (0.0, 50.0, 100.0):
            write_image(root / name / "database" / image_file_name(east, 0.0), color=(int(east), 90, 60))
        for east in (1.0, 51.0):
            write_image(root / name / "queries" / image_file_name(east, 0.0), color=(int(east), 90, 60))
    return root


def on_cpu(image_size: ImageSize, batch_size: int) -> Inference:
    """fp32 on the CPU, decoding in the main process, no progress bar."""
    return Inference(CPU, "fp32", batch_size, 0, image_size, progress=False)


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


FP32_CPU = Inference(CPU, "fp32", 32, 0, NATIVE, progress=False)  # the schema's batch size
E0, N0 = 551_000.0, 4_182_000.0  # San Francisco, UTM zone 10S


def dataset_name(east: float, north: float) -> str:
    """A complete dataset-format PNG name at UTM (east, north), zone 10S, with its lat/lon."""
    lat, lon = utm.to_latlon(east, north, 10, "S")
    return format_name(ImageName("", east, north, 10, "S", float(lat), float(lon), "", "", None, None, None, None,
                                 "", ""), ".png")


def write_test_set(root: Path, database: list[tuple[float, float]], queries: list[tuple[float, float]],
                   size: int = 16) -> Path:
    """`root/{database,queries}` of images at E0, N0 + the given offsets; image i encodes i (queries follow
    the database in that numbering)."""
    for index, (east, north) in enumerate(database):
        write_index_image(root / "database" / dataset_name(E0 + east, N0 + north), index, size)
    for index, (east, north) in enumerate(queries, start=len(database)):
        write_index_image(root / "queries" / dataset_name(E0 + east, N0 + north), index, size)
    return root


def encoded_index(path: Path) -> int:
    with Image.open(path) as image:
        red, green, _ = image.getpixel((0, 0))
    return red + 256 * green


def tiny_config(fc_output_dim: int = 32) -> RunConfig:
    return RunConfig().replace({"model.backbone": "resnet18", "model.fc_output_dim": fc_output_dim,
                                "model.pretrained": "none", "train.image_size": 32, "train.channels_last": False})


def write_tiny_checkpoint(path: Path, model_dim: int = 32, config_dim: int = 32) -> GeoLocalizationNet:
    """A checkpoint as training writes it: the options and the weights of a ResNet-18 with D = model_dim."""
    model = GeoLocalizationNet("resnet18", model_dim)
    write_checkpoint({"config": tiny_config(config_dim).to_dict(), "model": model.state_dict()}, path)
    return model


def run_command(module, argv: list[str]) -> int:
    """Parse `argv` with the command module's own parser and run it, as `cosplace-xs` would."""
    parser = argparse.ArgumentParser()
    module.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.run(args)


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run `cosplace-xs ARGV` in this process: (exit code, stdout, stderr), checked to hold no traceback."""
    from cosplace_xs.cli import main

    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out, captured.err


def the_error(err: str) -> str:
    """The command's error: its one `error: ` line (after any log lines) and the listing that may follow it."""
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    return err[err.index("error: "):].rstrip("\n")
