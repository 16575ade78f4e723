"""`cosplace-xs eval`: Recall@N of a trained checkpoint on one or more test sets, as a table, JSON and CSV.

Images are read at the checkpoint's evaluation size, which is its training image size unless the run set
--eval-image-size; --image-size N overrides it, --native-size keeps every image's own size (CosPlace's way) and
--shorter-side resizes the shorter side to that size, keeping the aspect ratio (CosPlace's --resize_test_imgs).
The positive threshold and the N of Recall@N are the checkpoint's own unless given.

Test sets are folders holding database/ and queries/ (or queries_v1/queries_v2, see --queries-folder), dataset
roots holding test/ (ours, or the VPR dataset downloader's datasets/NAME/images/test/), two folders given as
--database DIR --queries DIR, or every test set found under --datasets-root DIR: one row per test set.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosplace_xs.cli.inference_options import (
    SCORING,
    add_inference_arguments,
    add_model_arguments,
    inference_options,
    model_file,
    read_model,
    scoring_given,
)
from cosplace_xs.cli.option_flags import add_group_arguments, given_values
from cosplace_xs.config import STORE_DTYPES, ApproximateConfig, EvalConfig, GatherConfig, RerankConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.options import COMMAND_LINE, flag_of

if TYPE_CHECKING:  # the library is imported where it runs, so that --help answers without torch
    import numpy as np
    from torch import nn

    from cosplace_xs.data.layout import TestSetPaths
    from cosplace_xs.data.test_set import TestSet
    from cosplace_xs.evaluation.descriptor_store import ModelSignature
    from cosplace_xs.evaluation.evaluate import EvalResult
    from cosplace_xs.evaluation.inference import Inference
    from cosplace_xs.evaluation.rerank import Reranker

APPROXIMATE = "approximate_"
GATHER = "gather_"
RERANK = "rerank_"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="Recall@N of a checkpoint on test sets (table, JSON, CSV)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("test_sets", nargs="*", type=Path, metavar="TEST_SET",
                        help="a test set folder holding database/ and queries/, or a dataset root holding test/ "
                             "(or images/test/)")
    parser.add_argument("--database", type=Path, metavar="DIR", help="a folder of database images (with --queries)")
    parser.add_argument("--queries", type=Path, metavar="DIR", help="a folder of query images (with --database)")
    parser.add_argument("--datasets-root", type=Path, metavar="DIR",
                        help="evaluate every test set found under DIR (any depth, either layout)")
    add_model_arguments(parser)
    add_inference_arguments(parser)
    add_group_arguments(parser, EvalConfig, SCORING, only=("queries_folder",))
    stores = parser.add_mutually_exclusive_group()
    stores.add_argument("--save-descriptors", type=Path, metavar="DIR",
                        help="write each database's descriptors to DIR/<test set>.npy (+ .json), memory-mapped")
    stores.add_argument("--descriptors", type=Path, metavar="DIR",
                        help="reuse the database descriptors saved in DIR by --save-descriptors")
    parser.add_argument("--store-dtype", choices=STORE_DTYPES, default="float16",
                        help="precision of saved descriptors (default: float16, half the disk)")
    add_group_arguments(parser.add_argument_group("approximate search"), ApproximateConfig, APPROXIMATE)
    add_group_arguments(parser.add_argument_group("several processes (torchrun)"), GatherConfig, GATHER)
    add_group_arguments(parser.add_argument_group("re-ranking by geometric verification"), RerankConfig, RERANK)
    parser.add_argument("--save-predictions", type=int, default=0, metavar="N",
                        help="pictures of N queries per test set (hits and misses) with their top 5")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="folder of the results (default: the checkpoint's folder)")
    parser.set_defaults(run=run)


def _store_path(folder: Path, test_set: TestSet) -> Path:
    return folder / (test_set.name.replace("/", "_") + ".npy")


def _test_set_paths(args: argparse.Namespace, queries_folder: str | None) -> list[TestSetPaths]:
    """The test sets named on the command line: positional folders, --database with --queries, --datasets-root."""
    from cosplace_xs.data.layout import find_test_set, find_test_sets, folders_as_test_set

    if (args.database is None) != (args.queries is None):
        given, missing = ("--database", "--queries") if args.queries is None else ("--queries", "--database")
        raise ConfigError(f"option {given} needs {missing} too: the database and the queries folder of one test set")
    if not args.test_sets and args.database is None and args.datasets_root is None:
        raise ConfigError("no test set given: name a test set folder, --database DIR --queries DIR, or "
                          "--datasets-root DIR")
    found = [find_test_set(path, queries_folder=queries_folder) for path in args.test_sets]
    if args.database is not None:
        found.append(folders_as_test_set(args.database, args.queries))
    if args.datasets_root is not None:
        found += find_test_sets(args.datasets_root, queries_folder)
    return found


def _database_descriptors(args: argparse.Namespace, paths: TestSetPaths, test_set: TestSet, model: nn.Module,
                          signature: ModelSignature | None, inference: Inference) -> np.ndarray | None:
    """The database descriptors from a saved store, or extracted into a new one; None: evaluate extracts."""
    from cosplace_xs.evaluation.descriptor_store import build_store, load_store

    if args.descriptors is not None:
        store = load_store(_store_path(args.descriptors, test_set), signature)
        if [p.name for p in store.paths] != [p.name for p in test_set.database_paths]:
            raise ConfigError(f"{store.source}: holds the descriptors of another database than {paths.database_dir}; "
                              "save them again with --save-descriptors")
        return store.descriptors
    if args.save_descriptors is not None:
        store = build_store(model, paths.database_dir, test_set.database_paths, signature, inference,
                            path=_store_path(args.save_descriptors, test_set), dtype=args.store_dtype,
                            desc=f"{test_set.name} database")
        return store.descriptors
    return None


def _row(result: EvalResult, store_seconds: float) -> dict[str, Any]:
    row: dict[str, Any] = {"test_set": result.test_set}
    row.update({f"R@{n}": round(r, 2) for n, r in result.recalls.items()})
    row.update({f"approx_R@{n}": round(r, 2) for n, r in (result.approximate_recalls or {}).items()})
    row.update({f"rerank_R@{n}": round(r, 2) for n, r in (result.rerank_recalls or {}).items()})
    if result.rerank_recalls is not None:
        row["rerank_s_per_query"] = round(result.rerank_seconds_per_query, 3)
    row.update({"database": result.num_database, "queries": result.num_queries,
                "queries_without_positives": result.queries_without_positives,
                "seconds": round(result.seconds + store_seconds, 1), "test_method": result.test_method,
                "query_seconds": round(result.query_seconds, 2)})
    return row


def _reranker(rerank: RerankConfig, max_pixels: int, progress: bool) -> Reranker | None:
    """The re-ranking --rerank asks for, its matcher built now: a learned one that cannot load fails before any
    descriptor is extracted."""
    if rerank.k is None:
        return None
    from cosplace_xs.evaluation.rerank import Reranker

    return Reranker(rerank, max_pixels, progress)


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
    from cosplace_xs.data.test_set import read_test_set
    from cosplace_xs.evaluation.descriptor_store import ModelSignature
    from cosplace_xs.evaluation.evaluate import evaluate_model, rerank_result
    from cosplace_xs.evaluation.inference import Inference, eval_image_size, scoring_options
    from cosplace_xs.evaluation.model_loading import place_model
    from cosplace_xs.evaluation.recall import first_hit_ranks
    from cosplace_xs.evaluation.sharded_extraction import ShardedExtraction, evaluate_sharded
    from cosplace_xs.training.distributed import init_distributed, shutdown
    from cosplace_xs.training.run_files import require_writable
    from cosplace_xs.visualize.predictions import save_eval_pictures

    options, given = inference_options(args), scoring_given(args)
    approximate = ApproximateConfig.build(given_values(args, APPROXIMATE), COMMAND_LINE)
    gather = GatherConfig.build(given_values(args, GATHER), COMMAND_LINE)
    rerank = RerankConfig.build(given_values(args, RERANK), COMMAND_LINE)
    reranker = _reranker(rerank, options.max_image_pixels, not args.no_progress)
    if args.save_predictions < 0:
        raise ConfigError(f"option --save-predictions={args.save_predictions} is out of range: >= 0")
    checkpoint = model_file(args)
    out = args.out or checkpoint.parent
    # before any descriptor is extracted: a folder the results cannot go to would waste the whole evaluation
    require_writable(out, "--out" if args.out else "--out (default: the checkpoint's folder)")
    model, config = read_model(args)
    context, device = init_distributed(options.device)  # under torchrun: this rank's share of the extraction
    if not context.is_main:  # rank 0 reports; the others only warn
        logging.getLogger().setLevel(logging.WARNING)
    if context.enabled and args.save_descriptors is not None:
        raise ConfigError("option --save-descriptors is not available under torchrun yet: save the descriptors "
                          "with a one-process eval, then pass them to torchrun's eval with --descriptors")
    options = dataclasses.replace(options, device=device)
    inference = Inference.resolve(options, eval_image_size(config, options), progress=not args.no_progress)
    model = place_model(model, config, inference.device, options.compile)
    eval_config = scoring_options(config, given)
    if rerank.k is not None and rerank.k > max(eval_config.recall_values):
        raise ConfigError(f"option {flag_of(RerankConfig, 'k')}={rerank.k} re-ranks more candidates than the search "
                          f"returns, the largest N of Recall@N ({max(eval_config.recall_values)}): give at most that, "
                          f"or add {rerank.k} to --recall-values")
    test_set_paths = _test_set_paths(args, eval_config.queries_folder)
    test_sets = [read_test_set(paths, eval_config.positive_dist_threshold) for paths in test_set_paths]
    signature = (ModelSignature.of(model, config.model, inference.image_size)
                 if args.descriptors is not None or args.save_descriptors is not None else None)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    rows = []
    for paths, test_set in zip(test_set_paths, test_sets, strict=True):
        start = time.perf_counter()
        database = _database_descriptors(args, paths, test_set, model, signature, inference)
        store_seconds = time.perf_counter() - start  # extracting into (or opening) a store, outside evaluate_model
        if context.enabled:
            with ShardedExtraction(context.rank, context.world_size, out, gather.ram_mb * 2**20) as extraction:
                result = evaluate_sharded(model, test_set, eval_config, inference, extraction, database,
                                          approximate if approximate.kind is not None else None)
        else:
            result = evaluate_model(model, test_set, eval_config, inference, database,
                                    approximate if approximate.kind is not None else None)
        if result is None:  # a rank other than 0: its shard of the descriptors went to rank 0, which scores
            continue
        if reranker is not None:
            result = rerank_result(result, test_set, reranker, eval_config.recall_values)
        rows.append(_row(result, store_seconds))
        if args.save_predictions:
            folder = out / f"eval-{stamp}-pictures" / test_set.name.replace("/", "_")
            shown = result.predictions if result.rerank_predictions is None else result.rerank_predictions
            ranks = first_hit_ranks(shown, test_set.positives)
            written = save_eval_pictures(test_set, shown, ranks, folder, args.save_predictions)
            print(f"{test_set.name}: pictures of {len(written)} queries in {folder}")
    shutdown(context)
    if not context.is_main:
        return 0
    size = inference.image_size if isinstance(inference.image_size, int) else str(inference.image_size)
    settings = {"checkpoint": str(checkpoint), "image_size": size,
                "precision": inference.precision, "device": str(inference.device),
                "positive_dist_threshold": eval_config.positive_dist_threshold,
                "approximate": None if approximate.kind is None else dataclasses.asdict(approximate),
                "rerank": None if rerank.k is None else dataclasses.asdict(rerank)}
    print(format_table(rows))
    json_path, csv_path = _write_results(out, stamp, rows, settings)
    print(f"results: {json_path} and {csv_path}")
    return 0
