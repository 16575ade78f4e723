"""Start-up cost: seconds from a fresh process to the first training batch and to the first extracted descriptors.

Usage: python benchmarks/startup.py [--dataset DIR] [--city-preset small] [--size 224] [--batch 32]
           [--workers 0,2] [--threads 2]

Each measurement runs in a new Python process (this script with --child), as a command would: its clock starts
before the first import of the library. Training: the unchanged `training.loop.train`, its set-up steps timed
from outside (imports, dataset listing, class/group split with an empty split cache and then a filled one, val
set with its positives, model build, the check of every image, everything else) up to the first batch out of the
loader (worker start and the first decoded batch), where the child stops. Extraction: imports, the test set with
its positives, an untrained model, and `extract_descriptors` over the first batch of database images. The largest
packages' import times come from `python -X importtime`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

START = time.perf_counter()  # a child's clock: before any import of torch or of the library
HEAVY_PACKAGES = ("torch", "torchvision", "sklearn", "scipy", "matplotlib", "faiss", "tensorboard",
                  "torch.utils.tensorboard", "PIL", "numpy", "yaml")


class FirstBatch(Exception):  # noqa: N818 (not an error: how the child stops at the first batch)
    """Raised by the timed loader when the first training batch arrives."""


class Phases:
    """Seconds spent in each named phase (summed over calls), and when the measurement started."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = round(self.seconds.get(phase, 0.0) + seconds, 3)

    @contextlib.contextmanager
    def timing(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - start)

    def wrapped(self, function: Callable[..., Any], phase: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.timing(phase):
                return function(*args, **kwargs)

        return timed


def child_train(dataset: Path, run_dir: Path, size: int, batch: int, workers: int) -> dict[str, Any]:
    """Phases of `cosplace-xs train` up to its first batch, in this fresh process."""
    phases = Phases()
    with phases.timing("import"):
        import cosplace_xs.cli.train  # noqa: F401 (what the command imports first)
        from cosplace_xs.config import RunConfig
        from cosplace_xs.training import loop, setup
    config = RunConfig().replace({
        "train.dataset": str(dataset), "train.image_size": size, "train.batch_size": batch,
        "train.num_workers": workers, "train.device": "cpu", "model.pretrained": "none",
        "split.N": 1, "split.L": 1, "split.min_images_per_class": 1, "split.groups_num": 1,
    })
    build_loader = loop._loader
    first_batch: dict[str, float] = {}

    def timed_loader(*args: Any, **kwargs: Any) -> Iterator[Any]:
        start = time.perf_counter()
        phases.add("set-up (the rest)", start - first_batch["train_called"] - sum(
            v for k, v in phases.seconds.items() if k != "import"))
        for _ in build_loader(*args, **kwargs):
            phases.add("workers and first batch", time.perf_counter() - start)
            raise FirstBatch
        raise AssertionError("the loader gave no batch")

    patches = [mock.patch.object(loop, "_loader", timed_loader)]
    for module, name, phase in ((setup, "list_images", "dataset listing"), (setup, "_checked_split", "split"),
                                (setup, "_load_val_set", "val set and positives"), (setup, "build_model", "model"),
                                (setup, "checked_images", "checking every image")):
        patches.append(mock.patch.object(module, name, phases.wrapped(getattr(module, name), phase)))
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        first_batch["train_called"] = time.perf_counter()
        with contextlib.suppress(FirstBatch):
            loop.train(config, run_dir, progress=False)
    return {"phases": phases.seconds, "to_first_batch_s": round(time.perf_counter() - START, 3)}


def child_extract(dataset: Path, size: int, batch: int, workers: int) -> dict[str, Any]:
    """Phases of `cosplace-xs eval` up to its first batch of database descriptors, in this fresh process."""
    phases = Phases()
    with phases.timing("import"):
        import torch

        import cosplace_xs.cli.eval  # noqa: F401 (what the command imports first)
        from cosplace_xs.config import InferenceConfig, ModelConfig
        from cosplace_xs.data.test_set import load_test_set
        from cosplace_xs.evaluation.descriptors import extract_descriptors
        from cosplace_xs.evaluation.evaluate import evaluate_model  # noqa: F401 (eval's own imports)
        from cosplace_xs.evaluation.inference import Inference
        from cosplace_xs.model.network import build_model
    with phases.timing("test set and positives"):
        test_set = load_test_set(dataset / "test")
    with phases.timing("model"):
        inference = Inference.resolve(InferenceConfig(device="cpu", batch_size=batch, num_workers=workers), size,
                                      progress=False)
        model = build_model(ModelConfig(pretrained="none"), progress=False).to(inference.device)
        model = model.to(memory_format=torch.channels_last)
    with phases.timing("workers and first batch"):
        extract_descriptors(model, test_set.database_paths[:batch], inference)
    return {"phases": phases.seconds, "to_first_descriptor_s": round(time.perf_counter() - START, 3)}


def import_times(module: str) -> dict[str, float]:
    """Cumulative import seconds of the heavy packages when a fresh process imports `module` (-X importtime)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True,
                          text=True, check=True)
    return parse_import_times(done.stderr)


def parse_import_times(text: str) -> dict[str, float]:
    """Cumulative seconds of each of HEAVY_PACKAGES in `-X importtime` output (its first, outermost import)."""
    seconds: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"import time:\s*\d+ \|\s*(\d+) \|( *)(\S+)$", line)
        if match and match.group(3) in HEAVY_PACKAGES and match.group(3) not in seconds:
            seconds[match.group(3)] = round(int(match.group(1)) / 1e6, 3)
    return seconds


def run_child(*arguments: str, threads: int, cache: Path) -> dict[str, Any]:
    """This script in a fresh process (`--child ...`); its JSON line."""
    env = {**os.environ, "COSPLACE_XS_CACHE": str(cache), "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, __file__, "--child", *arguments], capture_output=True, text=True,
                          env=env)
    if done.returncode != 0:
        raise RuntimeError(f"startup child {arguments} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(dataset: Path, size: int, batch: int, workers: list[int], threads: int) -> list[dict[str, Any]]:
    """Training start-up with an empty and a filled split cache for each worker count; extraction start-up."""
    records = []
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as folder:
        for count in workers:
            cache = Path(folder) / f"cache_{count}"  # empty for the first run, filled by it for the second
            for split_cache in ("empty", "filled"):
                run_dir = Path(tempfile.mkdtemp(dir=folder))
                figures = run_child("train", str(dataset), str(run_dir), str(size), str(batch), str(count),
                                    threads=threads, cache=cache)
                records.append({"command": "train", "workers": count, "split_cache": split_cache, **figures})
        for count in workers:
            figures = run_child("extract", str(dataset), "-", str(size), str(batch), str(count), threads=threads,
                                cache=Path(folder) / "cache_extract")
            records.append({"command": "eval", "workers": count, **figures})
    return records


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        command, dataset, run_dir, size, batch, workers = sys.argv[2:8]
        if command == "train":
            figures = child_train(Path(dataset), Path(run_dir), int(size), int(batch), int(workers))
        else:
            figures = child_extract(Path(dataset), int(size), int(batch), int(workers))
        print(json.dumps(figures))
        return
    import common  # imports torch: only in the parent, whose clock does not matter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    common.add_dataset_args(parser, "train/ and test/")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", default="0,2", help="training/extraction workers, comma-separated")
    args = parser.parse_args()
    device = common.setup(args.threads, "cpu")
    common.emit("environment", common.environment(device))
    dataset = common.synthetic_city(args.dataset, args.city_preset)
    for module in ("cosplace_xs.training.loop", "cosplace_xs.evaluation.evaluate"):
        seconds = import_times(module)
        print(f"import {module}: " + ", ".join(f"{name} {value:.2f} s" for name, value in seconds.items()))
        common.emit("startup_imports", {"module": module, "seconds": seconds})
    for record in measure(dataset, args.size, args.batch, [int(w) for w in args.workers.split(",")],
                          args.threads):
        total = record.get("to_first_batch_s", record.get("to_first_descriptor_s"))
        cache = f", split cache {record['split_cache']}" if "split_cache" in record else ""
        print(f"{record['command']} ({record['workers']} workers{cache}): {total:.2f} s to the first "
              f"{'batch' if record['command'] == 'train' else 'descriptors'}: "
              + ", ".join(f"{phase} {seconds:.2f}" for phase, seconds in record["phases"].items()))
        common.emit("startup", record)


if __name__ == "__main__":
    main()
