"""`--compile`: torch.compile of a model in place, refused up front where it cannot work."""

from __future__ import annotations

import os
import shutil

import torch
from torch import nn

from cosplace_xs.config import TrainConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.options import flag_of


def require_compiler(device: torch.device) -> None:
    """On the CPU torch's compiler builds C++ kernels: without a C++ compiler, a clear error before any work
    rather than a traceback at the first batch."""
    if device.type == "cpu":
        compiler = os.environ.get("CXX", "g++")
        if shutil.which(compiler) is None:
            flag = flag_of(TrainConfig, "compile")
            raise ConfigError(f"option {flag} needs a C++ compiler on the CPU, and {compiler!r} was not found: "
                              f"install g++ (or set CXX to another one), or leave out {flag}")


def compile_in_place(model: nn.Module, device: torch.device) -> None:
    """Compile `model`'s forward in place: its state dict keys, checkpoints and DDP's view of it stay the same."""
    require_compiler(device)
    model.compile()
