"""Choosing the compute device and the autocast precision for it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import torch

from cosplace_xs.config import AUTO_WORKERS, TrainConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.options import flag_of

log = logging.getLogger(__name__)

CPUINFO = Path("/proc/cpuinfo")
# /proc/cpuinfo flag -> the feature's name, the faster first: with either, oneDNN runs bf16 convolutions and
# matrix products natively (about twice the fp32 rate on AVX512-BF16, more with AMX); without, it converts to
# fp32 and back, slower than fp32 alone
NATIVE_BF16_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}


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


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str]:
    """The feature flags of the first CPU in /proc/cpuinfo; empty where there is none (not Linux)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16() -> str | None:
    """The CPU feature that runs bf16 natively ("AMX-BF16" or "AVX512-BF16"), or None: from torch's own CPU
    probe (what its kernels will use), else from the /proc/cpuinfo flags."""
    if torch.cpu._is_amx_tile_supported():  # every CPU with AMX tiles has AMX-BF16
        return NATIVE_BF16_FLAGS["amx_bf16"]
    if torch.cpu._is_avx512_bf16_supported():
        return NATIVE_BF16_FLAGS["avx512_bf16"]
    flags = cpu_flags()
    return next((name for flag, name in NATIVE_BF16_FLAGS.items() if flag in flags), None)


def choose_precision(precision: str, device: torch.device) -> tuple[str, str]:
    """The precision `precision` means on `device`, and why: `auto` is fp16 mixed precision on CUDA, bf16
    autocast on a CPU with native bf16, fp32 on any other CPU; fp16 needs CUDA."""
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"option {flag_of(TrainConfig, 'precision')}=fp16 needs a CUDA device; on the CPU use bf16 "
                          "or fp32")
    if precision != "auto":
        return precision, f"{flag_of(TrainConfig, 'precision')} {precision} given"
    if device.type == "cuda":
        return "fp16", "fp16 mixed precision on CUDA"
    feature = native_bf16()
    if feature is not None:
        return "bf16", f"this CPU has {feature}"
    return "fp32", (f"this CPU has no native bf16 (AVX512-BF16/AMX); {flag_of(TrainConfig, 'precision')} bf16 "
                    "would be emulated and slower")


def resolve_precision(precision: str, device: torch.device) -> str:
    """`precision` resolved by `choose_precision`; the choice `auto` made is logged with its reason."""
    resolved, reason = choose_precision(precision, device)
    if precision == "auto":
        log.info("precision %s: %s", resolved, reason)
    return resolved


def precision_before_bf16(device: torch.device) -> str:
    """What `auto` meant before it chose bf16 on CPUs with native bf16 (fp16 on CUDA, fp32 on the CPU): runs of
    those versions recorded `auto`, and resume in what they trained in."""
    return "fp16" if device.type == "cuda" else "fp32"


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
