"""k-nearest-neighbour search of query descriptors in the database by L2 distance (faiss).

Exact search is faiss's brute-force L2 k-NN, the computation behind CosPlace's `IndexFlatL2` search, run on
the caller's array without building an index (an IndexFlatL2 would hold a second copy of the database). A
database that is not float32 (a float16 descriptor store) or not in memory (a memory map) is searched in
chunks whose results are merged, so at most one chunk is ever converted. Approximate search (IVF-Flat or
IVF-PQ through `faiss.index_factory`) is trained on a seeded sample of the database, which is then added in
chunks. Distances are squared L2, as faiss returns them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faiss
import numpy as np

from cosplace_xs.errors import ConfigError

log = logging.getLogger(__name__)

CHUNK_ROWS = 262_144  # 512 MiB of float32 512-d descriptors per converted chunk
MIN_POINTS_PER_CENTROID = 39  # below this faiss's k-means warns that its centroids are poorly trained
APPROXIMATE_KINDS = ("ivf", "ivfpq")


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


@dataclass(frozen=True)
class ApproximateSearch:
    """Options of an inverted-file index: `ivf` (IVF-Flat) or `ivfpq` (IVF with product quantisation).

    nlist: k-means cells; nprobe: cells visited per query; pq_m, pq_nbits: sub-vectors per descriptor and bits
    per sub-vector code (IVF-PQ only); train_size: database descriptors sampled (seeded) to train the index.
    An IVF-Flat index stores its own float32 copy of the database; IVF-PQ stores pq_m * pq_nbits bits per image.
    """

    kind: str = "ivf"
    nlist: int = 1024
    nprobe: int = 16
    pq_m: int = 32
    pq_nbits: int = 8
    train_size: int = 100_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in APPROXIMATE_KINDS:
            raise ConfigError(f"option --approximate={self.kind!r}: use one of {', '.join(APPROXIMATE_KINDS)}")
        for option, value in (("--nlist", self.nlist), ("--nprobe", self.nprobe), ("--pq-m", self.pq_m),
                              ("--pq-nbits", self.pq_nbits)):
            if value < 1:
                raise ConfigError(f"option {option}={value} is out of range: >= 1")

    def factory_string(self, num_database: int, dim: int) -> str:
        """The `faiss.index_factory` description, with nlist lowered to what the database can train."""
        nlist = max(1, min(self.nlist, num_database // MIN_POINTS_PER_CENTROID))
        if nlist < self.nlist:
            log.info("--nlist %d lowered to %d for a database of %d descriptors", self.nlist, nlist, num_database)
        if self.kind == "ivf":
            return f"IVF{nlist},Flat"
        if dim % self.pq_m:
            raise ConfigError(f"option --pq-m={self.pq_m} must divide the descriptor size {dim}")
        if num_database < 2**self.pq_nbits:
            raise ConfigError(f"option --pq-nbits={self.pq_nbits} needs at least {2**self.pq_nbits} database "
                              f"descriptors to train its codebooks; this database has {num_database}: lower it")
        return f"IVF{nlist},PQ{self.pq_m}x{self.pq_nbits}"


def build_index(database: np.ndarray, options: ApproximateSearch, chunk_rows: int = CHUNK_ROWS) -> faiss.Index:
    """An approximate L2 index trained on a seeded sample of the database, which is then added in chunks."""
    assert len(database) > 0, "an index needs a database"
    index = faiss.index_factory(database.shape[1], options.factory_string(*database.shape), faiss.METRIC_L2)
    generator = np.random.default_rng(options.seed)
    sample_size = min(options.train_size, len(database))
    sample = np.sort(generator.choice(len(database), size=sample_size, replace=False))
    index.train(np.ascontiguousarray(database[sample], dtype=np.float32))
    for start in range(0, len(database), chunk_rows):
        index.add(_float32_rows(database, start, start + chunk_rows))
    faiss.ParameterSpace().set_index_parameter(index, "nprobe", options.nprobe)
    return index


def approximate_knn(database: np.ndarray, queries: np.ndarray, k: int, options: ApproximateSearch
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Approximate k-NN through an inverted-file index; missing neighbours (few cells probed) are index -1."""
    index = build_index(database, options)
    distances, indices = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(database)))
    return distances, indices.astype(np.int64, copy=False)
