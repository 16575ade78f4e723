"""`cosplace-xs export`: ONNX and TorchScript files that give the model's descriptors at any batch and image size."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from helpers import run_main, write_tiny_checkpoint

from cosplace_xs.evaluation.export import run_exported


@pytest.mark.parametrize("file_format", ["onnx", "torchscript"])
def test_exported_file_gives_the_model_descriptors_at_two_sizes(file_format, tmp_path, capsys) -> None:
    torch.manual_seed(0)
    model = write_tiny_checkpoint(tmp_path / "run" / "best.pt", model_dim=8, config_dim=8).eval()
    out = tmp_path / "exported" / f"model.{file_format}"
    code, printed, err = run_main(["export", "--checkpoint", str(tmp_path / "run"), "--format", file_format,
                                   str(out)], capsys)
    assert code == 0, err
    assert re.fullmatch(rf"{re.escape(str(out))}: {file_format}, resnet18 with D=8 from {re.escape(str(tmp_path))}"
                        r"/run/best\.pt; largest difference from torch on images of 32x32 and 48x40: \d\.\de[-+]\d\d\n",
                        printed)
    for shape in ((2, 3, 32, 32), (3, 3, 48, 40)):  # batch, height and width all differ from the export's example
        images = torch.randn(*shape)
        with torch.no_grad():
            expected = model(images).numpy()
        got = run_exported(out, file_format, images)
        assert got.shape == (shape[0], 8)
        assert np.abs(got - expected).max() < 1e-4
