"""Choosing the compute device and the autocast precision for it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from cosplace_xs.config import AUTO_WORKERS, TrainConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.options import flag_of


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when present, else the CPU; an unavailable CUDA device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    flag = flag_of(TrainConfig, "device")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"option {flag}={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"option {flag}={name!r}: CUDA is not available on this machine; use {flag} cpu")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` means fp16 mixed precision on CUDA and fp32 on the CPU; fp16 needs CUDA."""
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"option {flag_of(TrainConfig, 'precision')}=fp16 needs a CUDA device; on the CPU use bf16 "
                          "or fp32")
    return precision


def resolve_num_workers(num_workers: int | None, device: torch.device) -> int:
    """Image-decoding processes of inference: `None` (auto) means AUTO_WORKERS of the device type."""
    if num_workers is not None:
        return num_workers
    return AUTO_WORKERS.get(device.type, 0)


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Mixed precision for `precision` in {fp16, bf16}; nothing for fp32."""
    if precision == "fp32":
        yield
        return
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
