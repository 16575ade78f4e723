"""Evaluation speed: descriptor extraction images/s, and exact k-NN search time at SF-XS and SF-XL sizes.

Usage: python benchmarks/evaluation.py [--dataset DIR] [--backbone resnet18] [--precisions fp32,bf16]
           [--compiled-precisions bf16] [--images 512] [--size 224] [--batch 32] [--workers 0,2]
           [--bare-steps 5] [--rounds 3]
           [--checkpoint RUN] [--recall] [--sfxl-fraction 0.1] [--database 27000] [--queries 1000]
           [--threads 2] [--device auto]

- extraction: the library's `extract_descriptors` on the first `--images` of the dataset's test database (the
  synthetic city by default), through its data loader, per number of workers and precision, beside the bare
  inference step of `model_throughput.py` (same model, batch and precision) measured before, between and after
  `--rounds` extractions (the one of median ratio reported); with `--compiled-precisions`, also the model
  compiled as `eval --compile` does, against the compiled bare step; then the peak memory of the process so far;
- recall (with `--recall`): Recall@N of the whole test set with each precision, to check that a faster
  precision keeps recall within a point of fp32 (a trained `--checkpoint` makes this meaningful);
- search: 1,000 queries against 27,000 database descriptors of 512 floats (SF-XS test), k = 20, for the library's
  `knn`, CosPlace's way (an `IndexFlatL2` built from the database, which copies it) and `faiss.knn` (no index,
  no copy); then a database of `--sfxl-fraction` x 2.8M (SF-XL test) measured, and the full size extrapolated
  linearly (exact search compares every query with every database vector). Its resident-memory peak above
  the database array, in database copies, says whether a search holds more than one copy of the descriptors.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import faiss
import model_throughput
import numpy as np
import torch
from torch import nn

from cosplace_xs.config import EvalConfig, ModelConfig
from cosplace_xs.data.layout import list_images
from cosplace_xs.data.test_set import load_test_set
from cosplace_xs.evaluation.descriptors import extract_descriptors
from cosplace_xs.evaluation.evaluate import evaluate_model
from cosplace_xs.evaluation.inference import Inference
from cosplace_xs.evaluation.model_loading import load_trained_model
from cosplace_xs.evaluation.retrieval import knn
from cosplace_xs.model.compilation import compile_in_place
from cosplace_xs.model.network import build_model

DIM = 512
QUERIES = 1_000
K = 20
SF_XS_DATABASE = 27_000
SF_XL_DATABASE = 2_800_000

Search = Callable[[np.ndarray, np.ndarray, int], object]


def index_flat_search(database: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """CosPlace's search: an exact L2 index holding its own copy of the database."""
    index = faiss.IndexFlatL2(database.shape[1])
    index.add(database)
    return index.search(queries, k)


def brute_force_search(database: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact L2 k-NN straight on the caller's array (no index, no copy)."""
    return faiss.knn(queries, database, k)


SEARCHES: dict[str, Search] = {"library_knn": knn, "index_flat_l2": index_flat_search,
                                "faiss_knn": brute_force_search}


def eval_model(backbone: str, checkpoint: Path | None, device: torch.device, compiled: bool = False) -> nn.Module:
    """A trained model from `checkpoint`, else an untrained one as training builds it (channels_last)."""
    if checkpoint is not None:
        return load_trained_model(checkpoint, device, compiled)[0]
    model = build_model(ModelConfig(backbone=backbone, pretrained="none")).to(device)
    model = model.to(memory_format=torch.channels_last).eval()
    if compiled:
        compile_in_place(model, device)  # as `eval --compile` does
    return model


def extraction_figures(model: nn.Module, paths: list[Path], size: int, batch: int, device: torch.device,
                       precision: str, workers: int) -> dict[str, float]:
    """Images/s of `extract_descriptors` over `paths` (after a one-batch warm-up)."""
    inference = Inference(device, precision, batch, workers, size, progress=False)
    extract_descriptors(model, paths[:batch], inference)
    start = time.perf_counter()
    extract_descriptors(model, paths, inference)
    return {"images_per_s": round(len(paths) / (time.perf_counter() - start), 2)}


def run_extraction(dataset: Path, backbone: str, checkpoint: Path | None, precisions: list[str], images: int,
                   size: int, batch: int, workers: int, device: torch.device, bare_steps: int,
                   rounds: int = 1, compiled: bool = False) -> list[dict]:
    """Extraction per precision `rounds` times, between bare inference steps of the same model, batch and
    precision."""
    paths = list_images(dataset / "test" / "database", "test database images")[:images]
    model = eval_model(backbone, checkpoint, device, compiled)
    records = []
    for precision in precisions:
        variant = model_throughput.Variant(True, precision, compiled=compiled)

        def bare(variant: model_throughput.Variant = variant) -> float:
            return batch / model_throughput.measure(backbone, size, batch, "infer", variant, device, bare_steps).median

        figures = common.bracketed(bare, lambda precision=precision: extraction_figures(
            model, paths, size, batch, device, precision, workers), rounds)
        records.append({"device": str(device), "threads": torch.get_num_threads(), "backbone": backbone,
                        "size": size, "batch": batch, "workers": workers, "images": len(paths),
                        "precision": precision, "compiled": compiled, **figures})
    return records


def run_recall(dataset: Path, backbone: str, checkpoint: Path | None, precisions: list[str], size: int,
               batch: int, workers: int, device: torch.device) -> list[dict[str, Any]]:
    """Recall@N of the dataset's test set with each precision (same weights)."""
    test_set = load_test_set(dataset / "test")
    model = eval_model(backbone, checkpoint, device)
    records = []
    for precision in precisions:
        inference = Inference(device, precision, batch, workers, size, progress=False)
        result = evaluate_model(model, test_set, EvalConfig(), inference)
        records.append({"test_set": test_set.name, "checkpoint": str(checkpoint) if checkpoint else "untrained",
                        "precision": precision, **{f"R@{n}": round(r, 2) for n, r in result.recalls.items()},
                        "seconds": round(result.seconds, 1)})
    return records


def random_descriptors(count: int, generator: np.random.Generator, dim: int = DIM) -> np.ndarray:
    """L2-normalised float32 descriptors, as the model outputs them."""
    descriptors = generator.standard_normal((count, dim), dtype=np.float32)
    descriptors /= np.linalg.norm(descriptors, axis=1, keepdims=True)
    return descriptors


def search_figures(search: Search, num_database: int, num_queries: int, k: int,
                   generator: np.random.Generator) -> dict[str, float]:
    """Seconds of one search, and its resident-memory peak above the database array in database copies."""
    database = random_descriptors(num_database, generator)
    queries = random_descriptors(num_queries, generator)
    search(database[:k], queries[:1], k)  # warm-up: faiss thread pool
    with common.rss_peak() as memory:
        start = time.perf_counter()
        search(database, queries, k)
        seconds = time.perf_counter() - start
    extra_mib = memory["rss_peak_mib"] - memory["rss_before_mib"]
    return {"search_s": round(seconds, 4), "extra_database_copies": round(extra_mib * 2**20 / database.nbytes, 2)}


def extrapolate(seconds: float, measured_database: int, target_database: int) -> float:
    """Exact search time grows linearly with the database (every query meets every database vector)."""
    return seconds * target_database / measured_database


def run_search(sfxl_fraction: float, threads: int, database: int = SF_XS_DATABASE,
               queries: int = QUERIES) -> list[dict]:
    """SF-XS-sized searches with every candidate, then the SF-XL extrapolation from a measured fraction."""
    faiss.omp_set_num_threads(threads)
    generator = np.random.default_rng(0)
    records = []
    for name, search in SEARCHES.items():
        figures = search_figures(search, database, queries, K, generator)
        records.append({"search": name, "database": database, "queries": queries, "dim": DIM, "k": K,
                        "threads": threads, **figures})
        measured = round(SF_XL_DATABASE * sfxl_fraction)
        figures = search_figures(search, measured, queries, K, generator)
        records.append({
            "search": name, "database": measured, "queries": queries, "dim": DIM, "k": K, "threads": threads,
            **figures, "sfxl_database": SF_XL_DATABASE,
            "sfxl_search_s_extrapolated": round(extrapolate(figures["search_s"], measured, SF_XL_DATABASE), 1),
        })
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    common.add_dataset_args(parser, "test/")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a trained run (default: untrained model)")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--images", type=int, default=512, help="database images extracted per precision")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=EvalConfig().batch_size)
    parser.add_argument("--compiled-precisions", default="",
                        help="comma-separated precisions also extracted with the model compiled (e.g. bf16)")
    parser.add_argument("--workers", default="0,2",
                        help="data-loading workers of the extraction, comma-separated (the eval default: 0 on the "
                        "CPU)")
    parser.add_argument("--bare-steps", type=int, default=5, help="timed steps of each bare comparison")
    parser.add_argument("--rounds", type=int, default=3, help="extractions per precision (median ratio reported)")
    parser.add_argument("--recall", action="store_true", help="also Recall@N of the whole test set per precision")
    parser.add_argument("--sfxl-fraction", type=float, default=0.1,
                        help="share of the 2.8M SF-XL database actually searched (the rest is extrapolated)")
    parser.add_argument("--database", type=int, default=SF_XS_DATABASE, help="database descriptors searched")
    parser.add_argument("--queries", type=int, default=QUERIES, help="query descriptors per search")
    args = parser.parse_args()
    device = common.setup(args.threads, args.device)
    common.emit("environment", common.environment(device))
    precisions = args.precisions.split(",")
    dataset = common.synthetic_city(args.dataset, args.city_preset)
    workers_counts = [int(w) for w in args.workers.split(",")]
    settings = common.precision_settings(args.precisions, args.compiled_precisions)
    records = [record for workers in workers_counts for chosen, compiled in settings for record in run_extraction(
        dataset, args.backbone, args.checkpoint, chosen, args.images, args.size, args.batch, workers, device,
        args.bare_steps, args.rounds, compiled)]
    for record in records:
        compiled = " compiled" if record["compiled"] else ""
        print(f"extraction {record['backbone']} {record['size']}px {record['precision']}{compiled} workers "
              f"{record['workers']}: {record['images_per_s']:6.1f} img/s = {100 * record['ratio_to_bare']:.0f}% "
              f"of bare inference ({record['bare_images_per_s']:.1f})")
        common.emit("extraction", record)
    if args.recall:
        for record in run_recall(dataset, args.backbone, args.checkpoint, precisions, args.size, args.batch,
                                 workers_counts[0], device):
            print(f"recall {record['test_set']} {record['precision']}: R@1 {record['R@1']:.1f} "
                  f"R@5 {record['R@5']:.1f} ({record['checkpoint']})")
            common.emit("recall", record)
    memory = common.peak_memory(device)
    print(f"peak memory of the evaluation (extraction{' and recall' if args.recall else ''}): {memory}")
    common.emit("evaluation_memory", {"device": str(device), **memory})
    for record in run_search(args.sfxl_fraction, args.threads, args.database, args.queries):
        extra = (f", SF-XL ({record['sfxl_database']:,}) extrapolated {record['sfxl_search_s_extrapolated']:.1f} s"
                 if "sfxl_database" in record else "")
        print(f"search {record['search']:13s} {record['database']:>9,} x {record['queries']:,} x {record['dim']}: "
              f"{record['search_s']:.3f} s, peak {record['extra_database_copies']:.2f} extra database copies{extra}")
        common.emit("search", record)


if __name__ == "__main__":
    main()
