"""k-nearest-neighbour search of query descriptors in the database by L2 distance (faiss).

Exact search is faiss's brute-force L2 k-NN, the computation behind CosPlace's `IndexFlatL2` search, run on
the caller's array without building an index (an IndexFlatL2 would hold a second copy of the database). A
database that is not float32 (a float16 descriptor store) or not in memory (a memory map) is searched in
chunks whose results are merged, so at most one chunk is ever converted. Approximate search: IVF-Flat or
IVF-PQ (through `faiss.index_factory`) is trained on a seeded sample of the database, which is then added in
chunks; HNSW (`faiss.IndexHNSWFlat`, Malkov and Yashunin 2018) needs no training and is built by adding the
database in chunks. Distances are squared L2, as faiss returns them.
"""

from __future__ import annotations

import logging

import faiss
import numpy as np

from cosplace_xs.config import ApproximateConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.options import flag_of

log = logging.getLogger(__name__)

CHUNK_ROWS = 262_144  # 512 MiB of float32 512-d descriptors per converted chunk
MIN_POINTS_PER_CENTROID = 39  # below this faiss's k-means warns that its centroids are poorly trained


def _float32_rows(database: np.ndarray, start: int, stop: int) -> np.ndarray:
    return np.ascontiguousarray(database[start:stop], dtype=np.float32)


def knn(database: np.ndarray, queries: np.ndarray, k: int, chunk_rows: int = CHUNK_ROWS
        ) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN: (squared L2 distances float32, database indices int64), both (num_queries, min(k, n)),
    nearest first."""
    assert len(database) > 0 and k >= 1, "search needs a database and k >= 1"
    k = min(k, len(database))
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    direct = database.dtype == np.float32 and database.flags.c_contiguous and not isinstance(database, np.memmap)
    if direct or len(database) <= chunk_rows:
        distances, indices = faiss.knn(queries, _float32_rows(database, 0, len(database)), k)
        return distances, indices.astype(np.int64, copy=False)
    heap = faiss.ResultHeap(len(queries), k)
    for start in range(0, len(database), chunk_rows):
        heap.add_result(*_chunk_knn(database, queries, k, start, chunk_rows))
    heap.finalize()
    return heap.D, heap.I


def _chunk_knn(database: np.ndarray, queries: np.ndarray, k: int, start: int, rows: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """k-NN in database[start:start + rows], indices in the whole database; the converted chunk dies on return."""
    chunk = _float32_rows(database, start, start + rows)
    distances, indices = faiss.knn(queries, chunk, min(k, len(chunk)))
    return distances, indices + start


def factory_string(options: ApproximateConfig, num_database: int, dim: int) -> str:
    """The `faiss.index_factory` description, with nlist lowered to what the database can train."""
    assert options.kind is not None, "an index needs a kind"
    nlist = max(1, min(options.nlist, num_database // MIN_POINTS_PER_CENTROID))
    nlist_flag = flag_of(ApproximateConfig, "nlist")
    if nlist < options.nlist:
        log.info("%s %d lowered to %d for a database of %d descriptors", nlist_flag, options.nlist, nlist,
                 num_database)
    if options.kind == "ivf":
        return f"IVF{nlist},Flat"
    if dim % options.pq_m:
        raise ConfigError(f"option {flag_of(ApproximateConfig, 'pq_m')}={options.pq_m} must divide the descriptor "
                          f"size {dim}")
    if num_database < 2**options.pq_nbits:
        raise ConfigError(f"option {flag_of(ApproximateConfig, 'pq_nbits')}={options.pq_nbits} needs at least "
                          f"{2**options.pq_nbits} database descriptors to train its codebooks; this database has "
                          f"{num_database}: lower it")
    return f"IVF{nlist},PQ{options.pq_m}x{options.pq_nbits}"


def build_hnsw(database: np.ndarray, options: ApproximateConfig, chunk_rows: int = CHUNK_ROWS) -> faiss.Index:
    """An HNSW graph of the database (L2), its links made with `ef_construction` candidates per added node."""
    index = faiss.IndexHNSWFlat(database.shape[1], options.hnsw_m, faiss.METRIC_L2)
    index.hnsw.efConstruction = options.ef_construction
    for start in range(0, len(database), chunk_rows):
        index.add(_float32_rows(database, start, start + chunk_rows))
    index.hnsw.efSearch = options.ef_search
    return index


def build_index(database: np.ndarray, options: ApproximateConfig, chunk_rows: int = CHUNK_ROWS) -> faiss.Index:
    """An approximate L2 index: IVF trained on a seeded sample of the database, which is then added in chunks;
    or an HNSW graph."""
    assert len(database) > 0, "an index needs a database"
    if options.kind == "hnsw":
        return build_hnsw(database, options, chunk_rows)
    index = faiss.index_factory(database.shape[1], factory_string(options, *database.shape), faiss.METRIC_L2)
    if isinstance(index, faiss.IndexIVFPQ):  # polysemous codes: annealing that takes minutes, never read here
        index.do_polysemous_training = False
    generator = np.random.default_rng(options.seed)
    sample_size = min(options.train_size, len(database))
    sample = np.sort(generator.choice(len(database), size=sample_size, replace=False))
    index.train(np.ascontiguousarray(database[sample], dtype=np.float32))
    for start in range(0, len(database), chunk_rows):
        index.add(_float32_rows(database, start, start + chunk_rows))
    faiss.ParameterSpace().set_index_parameter(index, "nprobe", options.nprobe)
    return index


def approximate_knn(database: np.ndarray, queries: np.ndarray, k: int, options: ApproximateConfig
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Approximate k-NN through an IVF or HNSW index; missing neighbours (few cells probed) are index -1."""
    index = build_index(database, options)
    distances, indices = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(database)))
    return distances, indices.astype(np.int64, copy=False)
