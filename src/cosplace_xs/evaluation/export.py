"""A model as a file that runs without cosplace-xs: ONNX (onnxruntime, TensorRT, ...) or TorchScript (torch.jit.load).

Both take any batch and any image size of at least 32 x 32 pixels: (B, 3, H, W) ImageNet-normalised images in,
(B, D) unit-norm descriptors out. GeM averages over the whole feature map with a mean over H and W, never with
a pooling window taken from the input's size, so no size is frozen into the file.

ONNX goes through torch's TorchScript-based exporter (`dynamo=False`): it writes a ResNet-18 in about 3 s, the
dynamo exporter in 11-14 s for the same graph (both measured on a 2-core CPU, same descriptors within 1e-6).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cosplace_xs.atomic_files import replacing

FORMATS = ("onnx", "torchscript")
INPUT_NAME, OUTPUT_NAME = "images", "descriptors"
ONNX_OPSET = 17
# (height, width) of the check after writing: square and not, so a size frozen into the file would show
CHECK_SIZES = ((32, 32), (48, 40))
CHECK_BATCH = 2


def export_model(model: nn.Module, path: Path, file_format: str) -> None:
    """Write `model` (eval mode, on the CPU, contiguous) to `path` in `file_format`, replacing it in one step."""
    assert file_format in FORMATS, file_format
    model = model.cpu().to(memory_format=torch.contiguous_format).eval()
    example = torch.zeros(1, 3, *CHECK_SIZES[0])
    with warnings.catch_warnings():
        # both exporters are deprecated in favour of torch.export, whose ONNX path is slower here (module docstring)
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        with replacing(path, "wb") as file, torch.no_grad():
            if file_format == "onnx":
                torch.onnx.export(model, (example,), file, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                  dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                                                OUTPUT_NAME: {0: "batch"}},
                                  opset_version=ONNX_OPSET, dynamo=False)
            else:
                torch.jit.save(torch.jit.script(model), file)


def run_exported(path: Path, file_format: str, images: torch.Tensor) -> np.ndarray:
    """The descriptors the exported file computes for `images`, run by onnxruntime or torch.jit.load."""
    if file_format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        scripted = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return scripted(images).numpy()


def largest_difference(model: nn.Module, path: Path, file_format: str,
                       sizes: Sequence[tuple[int, int]] = CHECK_SIZES, seed: int = 0) -> float:
    """The largest absolute difference between the descriptors of `model` and of the exported file, over seeded
    random images of each size in `sizes`."""
    model = model.cpu().to(memory_format=torch.contiguous_format).eval()
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for height, width in sizes:
        images = torch.randn(CHECK_BATCH, 3, height, width, generator=generator)
        with torch.no_grad():
            expected = model(images).numpy()
        worst = max(worst, float(np.abs(run_exported(path, file_format, images) - expected).max()))
    return worst
