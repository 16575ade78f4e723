"""The machine's ceiling: dense matmul FLOP/s in fp32 and bf16 (fp16 too on CUDA), best over a few sizes.

Usage: python benchmarks/matmul_ceiling.py [--threads 2] [--device auto] [--seconds 1.0] [--sizes 1024,2048,4096]
A matmul of two n x n matrices counts 2 n^3 FLOPs (one multiply and one add per term). It runs through two
libraries: `torch.mm` (the BLAS torch is built with, MKL on x86) and the same product as a 1 x 1 convolution
(oneDNN on the CPU, cuDNN on CUDA, the libraries that run the models' convolutions): MKL keeps its fastest kernels
for Intel CPUs, so on others oneDNN can be much faster. The ceiling is the best single call over both libraries
and the sizes (each timed for about `--seconds` / 6 after a warm-up); the median call of that setting is printed
beside it, since a shared host does not hold its best rate.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import common
import torch
import torch.nn.functional as F

SIZES = (1024, 2048, 4096)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def native_precisions(device: torch.device) -> list[str]:
    """Precisions the device runs in hardware: bf16 needs AVX512-BF16/AMX on the CPU, fp16 needs CUDA."""
    if device.type == "cuda":
        return ["fp32", "bf16", "fp16"] if torch.cuda.is_bf16_supported() else ["fp32", "fp16"]
    return ["fp32", "bf16"] if torch.ops.mkldnn._is_mkldnn_bf16_supported() else ["fp32"]


def gemm_call(kernel: str, n: int, precision: str, device: torch.device) -> Callable[[], torch.Tensor]:
    """An n x n by n x n product: `mm` through torch.mm, `conv1x1` as a 1 x 1 convolution of an n-channel,
    n-pixel channels_last image with n filters."""
    generator = torch.Generator(device=device).manual_seed(0)
    dtype = DTYPES[precision]
    if kernel == "mm":
        a = torch.randn(n, n, generator=generator, device=device).to(dtype)
        b = torch.randn(n, n, generator=generator, device=device).to(dtype)
        return lambda: torch.mm(a, b)
    image = torch.randn(1, n, n, 1, generator=generator, device=device).to(dtype)
    image = image.contiguous(memory_format=torch.channels_last)
    filters = torch.randn(n, n, 1, 1, generator=generator, device=device).to(dtype)
    filters = filters.contiguous(memory_format=torch.channels_last)
    return lambda: F.conv2d(image, filters)


KERNELS = ("mm", "conv1x1")


def matmul_flops(n: int, precision: str, device: torch.device, seconds: float,
                 kernel: str = "mm") -> tuple[float, float]:
    """(best, median) FLOP/s of an n x n by n x n product over repeats that together last about `seconds`."""
    call = gemm_call(kernel, n, precision, device)
    probe = common.time_calls(call, device, repeats=1, warmup=1)
    repeats = max(3, min(200, round(seconds / max(probe.median, 1e-6))))
    timing = common.time_calls(call, device, repeats=repeats, warmup=0)
    return 2 * n**3 / min(timing.seconds), 2 * n**3 / timing.median


def ceilings(device: torch.device, sizes: tuple[int, ...] = SIZES, seconds: float = 1.0
             ) -> dict[str, tuple[float, float, str]]:
    """Per native precision, the (best, median, kernel) FLOP/s of the kernel and size whose best is highest: the
    best is the ceiling; the median says how steadily this machine holds it (shared hosts do not)."""
    result = {}
    share = seconds / (len(sizes) * len(KERNELS))
    for precision in native_precisions(device):
        result[precision] = max(((*matmul_flops(n, precision, device, share, kernel), kernel)
                                 for kernel in KERNELS for n in sizes), key=lambda figures: figures[0])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per precision, split over the sizes")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="matrix sides n, comma-separated")
    args = parser.parse_args()
    device = common.setup(args.threads, args.device)
    common.emit("environment", common.environment(device))
    sizes = tuple(int(n) for n in args.sizes.split(","))
    for precision, (best, median, kernel) in ceilings(device, sizes, args.seconds).items():
        print(f"matmul ceiling {precision} on {device} ({args.threads} threads): {best / 1e9:8.1f} GFLOP/s "
              f"(median of the repeats {median / 1e9:.1f}; kernel {kernel})")
        common.emit("matmul_ceiling", {"device": str(device), "threads": args.threads, "precision": precision,
                                       "gflops": round(best / 1e9, 1), "gflops_median": round(median / 1e9, 1),
                                       "kernel": kernel})


if __name__ == "__main__":
    main()
