"""Retrieval at scale: Recall@N against query latency and index memory for exact, IVF, IVF-PQ and HNSW search.

Usage: python benchmarks/retrieval_scale.py [--places 10000] [--views 100] [--dim 256] [--queries 1000]
           [--noise 2.0] [--nprobes 1,4,16,64] [--ef-searches 16,32,64,128] [--plot FILE] [--small]
           [--threads 2] [--device cpu]

The database is synthetic and its recall meaningful: `--places` true places, unit vectors drawn at random, each
seen `--views` times as a noisy view (the place plus Gaussian noise of norm about `--noise`, normalised again),
1M descriptors by default; the queries are other noisy views of random places, and a query is right at N when
one of its first N results is a view of its place. Each index is built by the library's own code
(`evaluation.retrieval`, as `eval --approximate` builds it) with its build time and the resident memory it
adds; then its search parameter is swept (nprobe for IVF and IVF-PQ, efSearch for HNSW), each point giving
Recall@1/5/10 and milliseconds per query (all queries searched as one batch on `--threads` threads). The
curve of Recall@1 against latency is written as a PNG. `--small` runs the same at a size tests afford.
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path
from typing import Any

import common
import faiss
import numpy as np

from cosplace_xs.config import ApproximateConfig
from cosplace_xs.evaluation.retrieval import build_index, knn

RECALL_VALUES = (1, 5, 10)
PLOT = Path(__file__).resolve().parent / "retrieval_scale.png"
SMALL = {"places": 100, "views": 20, "dim": 32, "queries": 100, "noise": 1.0, "nprobes": "1,4,64",
         "ef_searches": "16,64", "nlist": 32, "pq_m": 8, "pq_nbits": 6, "hnsw_m": 8}


def noisy_views(places: np.ndarray, which: np.ndarray, noise: float, generator: np.random.Generator,
                chunk: int = 100_000) -> np.ndarray:
    """Unit vectors: places[which] plus Gaussian noise of expected norm `noise`, normalised (in chunks, so that
    a million views never need a float64 copy)."""
    out = np.empty((len(which), places.shape[1]), dtype=np.float32)
    scale = noise / np.sqrt(places.shape[1])
    for start in range(0, len(which), chunk):
        rows = places[which[start:start + chunk]]
        rows = rows + scale * generator.standard_normal(rows.shape, dtype=np.float32)
        out[start:start + chunk] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def synthetic_database(places: int, views: int, dim: int, queries: int, noise: float, seed: int = 0
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(database (places * views, dim), queries (queries, dim), the place of each query); database row i is a
    view of place i // views."""
    generator = np.random.default_rng(seed)
    centres = generator.standard_normal((places, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    database = noisy_views(centres, np.repeat(np.arange(places), views), noise, generator)
    query_places = generator.integers(0, places, queries)
    return database, noisy_views(centres, query_places, noise, generator), query_places


def place_recalls(predictions: np.ndarray, query_places: np.ndarray, views: int,
                  recall_values: tuple[int, ...] = RECALL_VALUES) -> dict[str, float]:
    """Recall@N in percent: a query is right at N when one of its first N predictions (database rows; -1 for
    none) is a view of its place."""
    right = (predictions >= 0) & (predictions // views == query_places[:, None])
    return {f"R@{n}": round(100.0 * float(right[:, :n].any(axis=1).mean()), 2) for n in recall_values}


def _timed_search(search: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    _, predictions = search(queries, k)
    return predictions, 1000.0 * (time.perf_counter() - start) / len(queries)


def run_exact(database: np.ndarray, queries: np.ndarray, query_places: np.ndarray, views: int) -> dict[str, Any]:
    """The library's exact k-NN (faiss's brute force on the array itself: no index, no copy)."""
    predictions, ms = _timed_search(lambda q, k: knn(database, q, k), queries, max(RECALL_VALUES))
    return {"method": "exact", "parameter": "", "value": 0, "ms_per_query": round(ms, 4), "build_s": 0.0,
            "index_mib": 0.0, **place_recalls(predictions, query_places, views)}


def run_index(kind: str, options: ApproximateConfig, values: list[int], database: np.ndarray, queries: np.ndarray,
              query_places: np.ndarray, views: int) -> list[dict[str, Any]]:
    """Build one index as `eval --approximate KIND` does, then search it at each nprobe or efSearch."""
    gc.collect()
    before = common.current_rss_mib()
    start = time.perf_counter()
    index = build_index(database, options)
    build_s = time.perf_counter() - start
    index_mib = common.current_rss_mib() - before
    parameter = "efSearch" if kind == "hnsw" else "nprobe"
    records = []
    for value in values:
        if kind == "hnsw":
            index.hnsw.efSearch = value
        else:
            faiss.ParameterSpace().set_index_parameter(index, "nprobe", value)
        predictions, ms = _timed_search(index.search, queries, max(RECALL_VALUES))
        records.append({"method": kind, "parameter": parameter, "value": value, "ms_per_query": round(ms, 4),
                        "build_s": round(build_s, 2), "index_mib": round(index_mib, 1),
                        **place_recalls(predictions, query_places, views)})
    del index
    return records


def plot(records: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Recall@1 against milliseconds per query, one line per method, its index memory in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
    for method in dict.fromkeys(record["method"] for record in records):
        points = [record for record in records if record["method"] == method]
        label = f"{method} ({points[0]['index_mib']:.0f} MiB index, built in {points[0]['build_s']:.0f} s)"
        axes.plot([p["ms_per_query"] for p in points], [p["R@1"] for p in points], marker="o", label=label)
        for point in points:
            if point["parameter"]:
                axes.annotate(str(point["value"]), (point["ms_per_query"], point["R@1"]), fontsize=7,
                              textcoords="offset points", xytext=(3, 3))
    axes.set_xscale("log")
    axes.set_xlabel("milliseconds per query (batched)")
    axes.set_ylabel("Recall@1 (%)")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_args(parser)
    parser.add_argument("--places", type=int, default=10_000)
    parser.add_argument("--views", type=int, default=100, help="database views of each place")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--noise", type=float, default=2.0, help="norm of the noise added to a place's vector")
    parser.add_argument("--nlist", type=int, default=1024, help="IVF cells")
    parser.add_argument("--train-size", type=int, default=50_000, help="database vectors that train IVF")
    parser.add_argument("--pq-m", type=int, default=32)
    parser.add_argument("--pq-nbits", type=int, default=8)
    parser.add_argument("--hnsw-m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=40)
    parser.add_argument("--nprobes", default="1,4,16,64")
    parser.add_argument("--ef-searches", default="16,32,64,128")
    parser.add_argument("--plot", type=Path, default=PLOT)
    parser.add_argument("--small", action="store_true", help="a database of 2,000 views of 32 floats (for tests)")
    args = parser.parse_args()
    if args.small:
        for key, value in SMALL.items():
            setattr(args, key, value)
    device = common.setup(args.threads, args.device)
    faiss.omp_set_num_threads(args.threads)
    common.emit("environment", common.environment(device))
    start = time.perf_counter()
    database, queries, query_places = synthetic_database(args.places, args.views, args.dim, args.queries, args.noise)
    print(f"database {len(database):,} x {args.dim} ({database.nbytes / 2**20:.0f} MiB), {len(queries):,} queries, "
          f"made in {time.perf_counter() - start:.1f} s")
    nprobes = [int(value) for value in args.nprobes.split(",")]
    ef_searches = [int(value) for value in args.ef_searches.split(",")]
    base = {"nlist": args.nlist, "train_size": args.train_size, "pq_m": args.pq_m, "pq_nbits": args.pq_nbits,
            "hnsw_m": args.hnsw_m, "ef_construction": args.ef_construction}
    records = [run_exact(database, queries, query_places, args.views)]
    for kind, values in (("ivf", nprobes), ("ivfpq", nprobes), ("hnsw", ef_searches)):
        records += run_index(kind, ApproximateConfig(kind, **base), values, database, queries, query_places,
                             args.views)
    size = {"database": len(database), "dim": args.dim, "queries": len(queries), "noise": args.noise,
            "threads": args.threads}
    for record in records:
        setting = f"{record['parameter']} {record['value']}" if record["parameter"] else ""
        print(f"{record['method']:6s} {setting:12s} R@1 {record['R@1']:6.2f}  R@10 {record['R@10']:6.2f}  "
              f"{record['ms_per_query']:8.3f} ms/query  index {record['index_mib']:7.1f} MiB  "
              f"built in {record['build_s']:.1f} s")
        common.emit("retrieval_scale", {**size, **record})
    title = (f"{len(database):,} descriptors of {args.dim} floats ({args.places:,} places x {args.views} views), "
             f"{len(queries):,} queries, {args.threads} threads")
    print(f"curve: {plot(records, args.plot, title)}; total {time.perf_counter() - start:.0f} s")
    common.emit("retrieval_scale_total", {**size, "seconds": round(time.perf_counter() - start, 1)})


if __name__ == "__main__":
    main()
