"""Shared helpers of the benchmark scripts: threads, timing with warm-up, JSON lines, versions, peak memory."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

JSON_PREFIX = "{"
# the synthetic city the benchmarks read unless told otherwise: generated once, then reused (data/ is not tracked)
CITY_CACHE = Path(__file__).resolve().parent.parent / "data" / "benchmarks"
CITY_PRESET = "small"
# SplitConfig options of the benchmarks: one group of every class, so that a small dataset (the synthetic
# city's largest default group has 24 classes) fills a batch of 32 distinct classes; the grouping changes
# nothing of the work done per batch
BENCHMARK_SPLIT = {"N": 1, "L": 1, "min_images_per_class": 1, "groups_num": 1}


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """--threads and --device, the same in every script."""
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2, this machine)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")


def add_dataset_args(parser: argparse.ArgumentParser, needs: str) -> None:
    """--dataset and --city-preset, for the scripts that read images."""
    parser.add_argument("--dataset", type=Path, default=None, help=f"a dataset root with {needs} (default: the "
                        "synthetic city of --city-preset under data/benchmarks/, generated the first time)")
    parser.add_argument("--city-preset", default=CITY_PRESET, help=f"synthetic city preset (default {CITY_PRESET})")


def setup(threads: int, device: str) -> torch.device:
    """Set the thread count and resolve the device ("auto": CUDA when present)."""
    torch.set_num_threads(threads)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so that wall-clock time covers them."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Per-call seconds of a timed function after warm-up."""

    seconds: list[float]
    warmup_seconds: float

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the repeats were."""
        return (max(self.seconds) - min(self.seconds)) / self.median


def time_calls(step: Callable[[], Any], device: torch.device, repeats: int, warmup: int = 1) -> Timing:
    """Run `step` `warmup` times untimed (allocations, kernel selection, compilation), then `repeats` times timed."""
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    synchronize(device)
    warmup_seconds = time.perf_counter() - start
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return Timing(seconds, warmup_seconds)


def precision_settings(precisions: str, compiled_precisions: str) -> list[tuple[list[str], bool]]:
    """(precisions, compiled) from the comma-separated `--precisions` and `--compiled-precisions`: the eager runs,
    then the compiled ones if any."""
    settings = [(precisions.split(","), False)]
    if compiled_precisions:
        settings.append((compiled_precisions.split(","), True))
    return settings


def bracketed(measure_bare: Callable[[], float], measure: Callable[[], dict[str, Any]],
              rounds: int = 1) -> dict[str, Any]:
    """`measure()`'s figures beside the bare images/s, measured before, between and after `rounds` runs of it.

    On a shared machine the speed drifts: each run is compared with the mean of the bare figures just before and
    just after it, and the run with the median ratio is reported (`ratios` lists them all); `bare_drift` is the
    spread of the bare figures over their mean.
    """
    bares = [measure_bare()]
    runs = []
    for _ in range(rounds):
        runs.append(measure())
        bares.append(measure_bare())
    ratios = [run["images_per_s"] / ((bares[i] + bares[i + 1]) / 2) for i, run in enumerate(runs)]
    median = sorted(range(rounds), key=ratios.__getitem__)[rounds // 2]
    bare = (bares[median] + bares[median + 1]) / 2
    return {**runs[median], "bare_images_per_s": round(bare, 2),
            "bare_drift": round((max(bares) - min(bares)) / statistics.mean(bares), 3),
            "ratio_to_bare": round(ratios[median], 3), "ratios": [round(r, 3) for r in ratios]}


def busy_share(seconds: float = 1.0) -> float:
    """Share of the machine's CPU time that was busy over the next `seconds` (from /proc/stat; 0 elsewhere).

    Unlike the load average, which decays over minutes, this says whether the cores are free right now.
    """
    stat = Path("/proc/stat")
    if not stat.is_file():
        return 0.0

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in stat.read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle and iowait
        return sum(fields) - idle, sum(fields)

    busy_before, total_before = sample()
    time.sleep(seconds)
    busy_after, total_after = sample()
    return (busy_after - busy_before) / max(total_after - total_before, 1)


def wait_until_idle(max_busy: float, timeout: float, max_load: float | None = None) -> tuple[float, float]:
    """Wait until at most `max_busy` of the CPU is busy (and, with `max_load`, the 1-minute load average is below
    it), or `timeout` seconds passed; returns (the last busy share, the seconds waited)."""
    start = time.perf_counter()
    busy = busy_share()
    while (busy > max_busy or (max_load is not None and os.getloadavg()[0] > max_load)) \
            and time.perf_counter() - start < timeout:
        busy = busy_share(5.0)
    return busy, time.perf_counter() - start


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def environment(device: torch.device) -> dict[str, Any]:
    """Date, versions and hardware, so that figures can be compared over time."""
    import faiss
    import PIL
    import torchvision

    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "faiss": faiss.__version__,
        "pillow": PIL.__version__,
        "cpu": cpu_model(),
        "cpu_count": len(os.sched_getaffinity(0)),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "loadavg_1min": round(os.getloadavg()[0], 2),  # above ~0.5 other jobs share the cores: figures drop
        "busy_share_before": round(busy_share(0.25), 3),  # CPU busy just before measuring (other jobs)
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def peak_memory(device: torch.device) -> dict[str, float]:
    """Peak resident memory (MiB) of this process and of its largest child (data-loader workers), and on CUDA
    the peak GPU memory allocated by tensors."""
    to_mib = 1 / 1024  # ru_maxrss is in KiB on Linux
    peaks = {
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * to_mib, 1),
        "peak_rss_children_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * to_mib, 1),
    }
    if device.type == "cuda":
        peaks["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return peaks


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # the kernel writes kB
    raise KeyError(field)


def current_rss_mib() -> float:
    """Resident memory of this process now (MiB)."""
    return _status_mib("VmRSS")


@contextlib.contextmanager
def rss_peak() -> Iterator[dict[str, float]]:
    """Peak resident memory (MiB) reached inside the block, and the resident memory before it.

    Resets the kernel's high-water mark first (`/proc/self/clear_refs`), so the peak is the block's own; the
    process peak of `peak_memory` is measured by the same mark, so read it before using this.
    """
    Path("/proc/self/clear_refs").write_text("5")
    figures = {"rss_before_mib": current_rss_mib()}
    yield figures
    figures["rss_peak_mib"] = _status_mib("VmHWM")


def json_line(record: dict[str, Any]) -> str:
    return json.dumps(record)


def emit(benchmark: str, record: dict[str, Any]) -> None:
    """Print one JSON line: the benchmark's name and its figures."""
    print(json_line({"benchmark": benchmark, **record}), flush=True)


def parse_records(text: str) -> list[dict[str, Any]]:
    """The JSON lines of a benchmark's output."""
    return [json.loads(line) for line in text.splitlines() if line.startswith(JSON_PREFIX)]


def synthetic_city(dataset: Path | None = None, preset: str = CITY_PRESET) -> Path:
    """`dataset` when given; else the synthetic city of `preset` cached under data/benchmarks/, generated there
    the first time (into a temporary sibling renamed when complete, so an interrupted generation is never used)."""
    if dataset is not None:
        return dataset
    root = CITY_CACHE / f"synthetic_city_{preset}"
    if not (root / "train").is_dir():
        from cosplace_xs.synthetic.city import city_preset, generate_city

        partial = root.with_name(root.name + ".partial")
        generate_city(partial, city_preset(preset), progress=False, overwrite=True)
        partial.replace(root)
    return root
