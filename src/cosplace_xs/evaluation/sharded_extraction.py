"""Descriptor extraction split over the processes of `torchrun ... -m cosplace_xs eval`.

Each rank extracts one contiguous shard of the sorted image list (the first `count % world_size` ranks one image
more), and the shards come together on rank 0, in order: through `torch.distributed.gather` (gloo on the CPU, nccl
on CUDA) when all the descriptors fit the RAM budget, else as one `.npy` file per rank in a scratch folder of the
results folder, which rank 0 copies into one memory-mapped array. Rank 0 alone searches and computes Recall@N, so
the recalls are those of one process; the scratch folder is removed when the extraction's context ends.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from cosplace_xs.config import ApproximateConfig, EvalConfig
from cosplace_xs.data.test_set import TestSet
from cosplace_xs.evaluation.descriptors import Views, extract_descriptors
from cosplace_xs.evaluation.evaluate import EvalResult, evaluate_model
from cosplace_xs.evaluation.inference import Inference
from cosplace_xs.evaluation.test_methods import query_reading

log = logging.getLogger(__name__)

COPY_ROWS = 65_536  # rows of a shard copied at a time into rank 0's array: bounded memory whatever the shard


def shard_bounds(count: int, world_size: int, rank: int) -> slice:
    """The contiguous rows of `count` that `rank` of `world_size` extracts; ranks beyond `count` get none."""
    share, extra = divmod(count, world_size)
    start = rank * share + min(rank, extra)
    return slice(start, start + share + (rank < extra))


class ShardedExtraction:
    """Extraction of one test set by every rank; a context whose end removes the shard files it wrote."""

    def __init__(self, rank: int, world_size: int, results_dir: Path, ram_budget_bytes: float) -> None:
        self.rank, self.world_size = rank, world_size
        self.results_dir = results_dir
        self.ram_budget_bytes = ram_budget_bytes
        self._scratch: list[Path] = []

    def __enter__(self) -> ShardedExtraction:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for folder in self._scratch:  # rank 0 made them; an array still mapped stays readable until released
            shutil.rmtree(folder, ignore_errors=True)
        self._scratch.clear()

    def extract(self, model: nn.Module, paths: Sequence[Path], inference: Inference, desc: str,
                views: Views | None = None) -> np.ndarray | None:
        """Descriptors of all `paths` (row i for paths[i], as `extract_descriptors` gives them) on rank 0, None on
        the other ranks, which extract their shard without progress bars."""
        if self.rank != 0:
            inference = dataclasses.replace(inference, progress=False)
        mine = list(paths[shard_bounds(len(paths), self.world_size, self.rank)])
        shard = extract_descriptors(model, mine, inference, desc, views=views) if mine else None
        # rank 0 always has images (it takes the first of them): its shape tells the ranks that have none
        shape = [None if shard is None else shard.shape[1:]]
        dist.broadcast_object_list(shape, src=0)
        per_image = tuple(shape[0])
        if shard is None:
            shard = np.empty((0, *per_image), dtype=np.float32)
        size = len(paths) * math.prod(per_image) * np.dtype(np.float32).itemsize
        if size <= self.ram_budget_bytes:
            return self._gather(shard, len(paths), inference.device)
        return self._through_files(shard, len(paths), per_image, desc, size)

    def _gather(self, shard: np.ndarray, count: int, device: torch.device) -> np.ndarray | None:
        """Shards padded to the largest one (gather wants one shape), gathered on rank 0 and trimmed."""
        on = device if dist.get_backend() == "nccl" else torch.device("cpu")
        rows = [shard_bounds(count, self.world_size, rank) for rank in range(self.world_size)]
        padded = torch.zeros((rows[0].stop, *shard.shape[1:]), dtype=torch.float32, device=on)
        padded[:len(shard)] = torch.from_numpy(shard).to(on)
        gathered = [torch.empty_like(padded) for _ in rows] if self.rank == 0 else None
        dist.gather(padded, gathered, dst=0)
        if gathered is None:
            return None
        return np.concatenate([part[:bounds.stop - bounds.start].cpu().numpy()
                               for part, bounds in zip(gathered, rows, strict=True)])

    def _through_files(self, shard: np.ndarray, count: int, per_image: tuple[int, ...], desc: str,
                       size: int) -> np.ndarray | None:
        """Each rank's shard as `<rank>.npy` in a scratch folder rank 0 names; rank 0 copies them into one
        memory-mapped array there (kept until the context ends) and deletes them."""
        folder = [None]
        if self.rank == 0:
            self.results_dir.mkdir(parents=True, exist_ok=True)
            folder = [Path(tempfile.mkdtemp(prefix=".eval-shards-", dir=self.results_dir))]
            self._scratch.append(folder[0])
            log.info("%s: %.1f MB of descriptors, above the RAM budget: the ranks' shards reach rank 0 through %s",
                     desc, size / 2**20, folder[0])
        dist.broadcast_object_list(folder, src=0)
        np.save(folder[0] / f"{self.rank}.npy", shard)
        dist.barrier()  # every shard is written
        if self.rank != 0:
            return None
        start = time.perf_counter()
        whole = np.lib.format.open_memmap(folder[0] / "all.npy", mode="w+", dtype=np.float32,
                                          shape=(count, *per_image))
        for rank in range(self.world_size):
            part_path = folder[0] / f"{rank}.npy"
            part, at = np.load(part_path, mmap_mode="r"), shard_bounds(count, self.world_size, rank).start
            for row in range(0, len(part), COPY_ROWS):
                stop = min(row + COPY_ROWS, len(part))
                whole[at + row:at + stop] = part[row:stop]
            del part
            part_path.unlink()
        whole.flush()
        log.debug("%s: shards joined in %.1f s", desc, time.perf_counter() - start)
        return whole


def evaluate_sharded(model: nn.Module, test_set: TestSet, config: EvalConfig, inference: Inference,
                     extraction: ShardedExtraction, database_descriptors: np.ndarray | None = None,
                     approximate: ApproximateConfig | None = None) -> EvalResult | None:
    """`evaluate_model` with the database (unless given) and the queries extracted by every rank; the result on
    rank 0, None on the others. Every rank must call it, for the same test sets in the same order."""
    if extraction.rank == 0 and (test_set.num_database == 0 or test_set.num_queries == 0):
        return evaluate_model(model, test_set, config, inference, database_descriptors)  # its error names the set
    if test_set.num_database == 0 or test_set.num_queries == 0:
        return None
    start = time.perf_counter()
    if database_descriptors is None:
        database_descriptors = extraction.extract(model, test_set.database_paths, inference,
                                                  f"{test_set.name} database")
    query_start = time.perf_counter()
    query_inference, views = query_reading(config.test_method, inference)
    queries = extraction.extract(model, test_set.queries_paths, query_inference, f"{test_set.name} queries", views)
    query_extraction = time.perf_counter() - query_start
    if extraction.rank != 0:
        return None
    result = evaluate_model(model, test_set, config, inference, database_descriptors, approximate,
                            query_descriptors=queries)
    return dataclasses.replace(result, seconds=time.perf_counter() - start,
                               query_seconds=result.query_seconds + query_extraction)
