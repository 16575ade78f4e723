"""`cosplace-xs eval`: Recall@N of a trained checkpoint on one or more test sets, as a table, JSON and CSV.

Images are read at the checkpoint's evaluation size, which is its training image size unless the run set
--eval-image-size; --image-size N overrides it and --native-size keeps every image's own size (CosPlace's way).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cosplace_xs.checkpoints import resolve_checkpoint
from cosplace_xs.config import PRECISIONS, EvalConfig, RunConfig
from cosplace_xs.data.layout import find_test_set
from cosplace_xs.data.test_set import TestSet, load_test_set
from cosplace_xs.device import AUTO_WORKERS_TEXT, resolve_device, resolve_precision
from cosplace_xs.errors import ConfigError
from cosplace_xs.evaluation.descriptor_store import STORE_DTYPES, ModelSignature, build_store, load_store
from cosplace_xs.evaluation.evaluate import EvalResult, evaluate_model
from cosplace_xs.evaluation.model_loading import load_trained_model
from cosplace_xs.evaluation.recall import first_hit_ranks
from cosplace_xs.evaluation.retrieval import APPROXIMATE_KINDS, ApproximateSearch
from cosplace_xs.training.run_files import require_writable
from cosplace_xs.visualize.predictions import save_eval_pictures


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="Recall@N of a checkpoint on test sets (table, JSON, CSV)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("test_sets", nargs="+", type=Path, metavar="TEST_SET",
                        help="a test set folder holding database/ and queries/, or a dataset root holding test/")
    parser.add_argument("--checkpoint", type=Path, required=True, metavar="CKPT_OR_RUN_DIR",
                        help="a checkpoint file, or a run folder (its best.pt, else last.pt)")
    parser.add_argument("--positive-dist-threshold", type=float, default=25.0, metavar="METRES",
                        help="metres within which a database image is a positive (default: 25)")
    parser.add_argument("--recall-values", type=int, nargs="+", default=[1, 5, 10, 20], metavar="N",
                        help="the N of Recall@N (default: 1 5 10 20)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--image-size", type=int, metavar="N",
                      help="resize every image to N x N (default: the training size)")
    size.add_argument("--native-size", action="store_true", help="keep every image's own size")
    add_inference_arguments(parser)
    stores = parser.add_mutually_exclusive_group()
    stores.add_argument("--save-descriptors", type=Path, metavar="DIR",
                        help="write each database's descriptors to DIR/<test set>.npy (+ .json), memory-mapped")
    stores.add_argument("--descriptors", type=Path, metavar="DIR",
                        help="reuse the database descriptors saved in DIR by --save-descriptors")
    parser.add_argument("--store-dtype", choices=STORE_DTYPES, default="float16",
                        help="precision of saved descriptors (default: float16, half the disk)")
    parser.add_argument("--approximate", choices=APPROXIMATE_KINDS,
                        help="also search with an IVF-Flat or IVF-PQ index and report its Recall@N")
    parser.add_argument("--nlist", type=int, default=1024, help="IVF cells (lowered for small databases)")
    parser.add_argument("--nprobe", type=int, default=16, help="IVF cells visited per query")
    parser.add_argument("--pq-m", type=int, default=32, help="IVF-PQ sub-vectors per descriptor")
    parser.add_argument("--pq-nbits", type=int, default=8, help="IVF-PQ bits per sub-vector code")
    parser.add_argument("--save-predictions", type=int, default=0, metavar="N",
                        help="pictures of N queries per test set (hits and misses) with their top 5")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="folder of the results (default: the checkpoint's folder)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `eval` and `predict` that say how the model runs: batch, decoding, device, precision,
    compilation."""
    parser.add_argument("--batch-size", type=int, default=32, metavar="N",
                        help="images per inference batch (default: 32)")
    parser.add_argument("--num-workers", type=int, metavar="N",
                        help=f"image decoding processes (default: {AUTO_WORKERS_TEXT})")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="auto", choices=("auto", *PRECISIONS),
                        help="auto = fp16 autocast on CUDA, fp32 on the CPU")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model: faster batches after 10-60 s of compilation (and again for "
                             "each new batch shape)")


def check_inference_options(args: argparse.Namespace) -> None:
    """The options shared by `eval` and `predict` that no configuration class checks under their own names."""
    if args.batch_size < 1:
        raise ConfigError(f"option --batch-size={args.batch_size} is out of range: >= 1")
    if args.num_workers is not None and args.num_workers < 0:
        raise ConfigError(f"option --num-workers={args.num_workers} is out of range: >= 0")


def eval_image_size(args: argparse.Namespace, config: RunConfig) -> int | None:
    """--native-size, else --image-size, else the run's evaluation size (its training size by default)."""
    if args.native_size:
        return None
    if args.image_size is not None:
        if args.image_size < 16:
            raise ConfigError(f"option --image-size={args.image_size} is out of range: >= 16 pixels")
        return args.image_size
    return config.eval.image_size or config.train.image_size


def _store_path(folder: Path, test_set: TestSet) -> Path:
    return folder / (test_set.name.replace("/", "_") + ".npy")


def _database_descriptors(args: argparse.Namespace, test_path: Path, test_set: TestSet, model: nn.Module,
                          signature: ModelSignature | None, eval_config: EvalConfig, device: torch.device,
                          precision: str) -> np.ndarray | None:
    """The database descriptors from a saved store, or extracted into a new one; None: evaluate extracts."""
    if args.descriptors is not None:
        store = load_store(_store_path(args.descriptors, test_set), signature)
        if [p.name for p in store.paths] != [p.name for p in test_set.database_paths]:
            raise ConfigError(f"{store.source}: holds the descriptors of another database than {test_path}; "
                              "save them again with --save-descriptors")
        return store.descriptors
    if args.save_descriptors is not None:
        database_dir = find_test_set(test_path).database_dir
        store = build_store(model, database_dir, test_set.database_paths, signature, eval_config.batch_size, device,
                            precision, eval_config.num_workers, path=_store_path(args.save_descriptors, test_set),
                            dtype=args.store_dtype, progress=not args.no_progress, desc=f"{test_set.name} database")
        return store.descriptors
    return None


def _row(result: EvalResult, store_seconds: float) -> dict[str, Any]:
    row: dict[str, Any] = {"test_set": result.test_set}
    row.update({f"R@{n}": round(r, 2) for n, r in result.recalls.items()})
    row.update({f"approx_R@{n}": round(r, 2) for n, r in (result.approximate_recalls or {}).items()})
    row.update({"database": result.num_database, "queries": result.num_queries,
                "queries_without_positives": result.queries_without_positives,
                "seconds": round(result.seconds + store_seconds, 1)})
    return row


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as aligned columns, one test set per line."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    widths = {c: max(len(c), *(len(str(row.get(c, ""))) for row in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) if c == "test_set" else c.rjust(widths[c]) for c in columns)]
    for row in rows:
        lines.append("  ".join(str(row.get(c, "")).ljust(widths[c]) if c == "test_set"
                               else str(row.get(c, "")).rjust(widths[c]) for c in columns))
    return "\n".join(lines)


def _write_results(out: Path, stamp: str, rows: list[dict[str, Any]], settings: dict[str, Any]) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out / f"eval-{stamp}.json", out / f"eval-{stamp}.csv"
    json_path.write_text(json.dumps({**settings, "results": rows}, indent=2) + "\n")
    with csv_path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
        writer.writeheader()
        writer.writerows(rows)
    return json_path, csv_path


def run(args: argparse.Namespace) -> int:
    check_inference_options(args)
    if args.save_predictions < 0:
        raise ConfigError(f"option --save-predictions={args.save_predictions} is out of range: >= 0")
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    checkpoint = resolve_checkpoint(args.checkpoint)
    out = args.out or checkpoint.parent
    # before any descriptor is extracted: a folder the results cannot go to would waste the whole evaluation
    require_writable(out, "--out" if args.out else "--out (default: the checkpoint's folder)")
    model, config = load_trained_model(checkpoint, device, args.compile)
    eval_config = EvalConfig(args.positive_dist_threshold, tuple(args.recall_values), eval_image_size(args, config),
                             args.batch_size, args.num_workers)
    approximate = None if args.approximate is None else ApproximateSearch(
        args.approximate, args.nlist, args.nprobe, args.pq_m, args.pq_nbits)
    test_sets = [load_test_set(path, eval_config.positive_dist_threshold) for path in args.test_sets]
    signature = (ModelSignature.of(model, config.model, eval_config.image_size)
                 if args.descriptors is not None or args.save_descriptors is not None else None)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    rows = []
    for path, test_set in zip(args.test_sets, test_sets, strict=True):
        start = time.perf_counter()
        database = _database_descriptors(args, path, test_set, model, signature, eval_config, device, precision)
        store_seconds = time.perf_counter() - start  # extracting into (or opening) a store, outside evaluate_model
        result = evaluate_model(model, test_set, eval_config, device, precision, database, approximate,
                                progress=not args.no_progress)
        rows.append(_row(result, store_seconds))
        if args.save_predictions:
            folder = out / f"eval-{stamp}-pictures" / test_set.name.replace("/", "_")
            ranks = first_hit_ranks(result.predictions, test_set.positives)
            written = save_eval_pictures(test_set, result.predictions, ranks, folder, args.save_predictions)
            print(f"{test_set.name}: pictures of {len(written)} queries in {folder}")
    settings = {"checkpoint": str(checkpoint), "image_size": eval_config.image_size or "native",
                "precision": precision, "device": str(device),
                "positive_dist_threshold": eval_config.positive_dist_threshold,
                "approximate": None if approximate is None else dataclasses.asdict(approximate)}
    print(format_table(rows))
    json_path, csv_path = _write_results(out, stamp, rows, settings)
    print(f"results: {json_path} and {csv_path}")
    return 0
