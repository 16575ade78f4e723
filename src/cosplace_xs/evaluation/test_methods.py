"""Query test-time methods of the VPR benchmark (Berton et al., "Deep Visual Geo-localization Benchmark",
CVPR 2022: its `--test_method`), for an evaluation size S (a square side, or a shorter side); the database is read
at that size.

- hard_resize: each query resized to S x S (the toolkit's default).
- single_query: each query at its own size (the benchmark feeds such queries one per batch; here images of one
  size share a batch, which gives the same descriptors).
- central_crop: the query scaled to cover S x S, aspect kept, then its central S x S.
- five_crops: the query's shorter side resized to S, then its four corner and central S x S crops; the query's
  descriptor is the mean of the five crops' (not normalised again, as in the benchmark: the L2 ranking by a
  mean of unit vectors equals the cosine ranking).
- nearest_crop: the five crops searched one by one; their 5 k neighbours sorted by distance, each database
  image kept at its closest crop: a database image's distance is its smallest to any crop.
- maj_voting: nearest_crop after votes: a database image found by c > 1 crops among their first n (n = 1, 5,
  10) has weight * c / n taken off each of those distances.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from cosplace_xs.config import EvalConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.evaluation.descriptors import Views
from cosplace_xs.evaluation.inference import NATIVE, Inference, square_side
from cosplace_xs.options import flag_of

VOTES = (1, 5, 10)  # the first n predictions of each crop that vote (the benchmark's top1, top5, top10)
Search = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]  # (queries, k) -> (distances, indices)


def central_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """The central `size` x `size` of `image` (C, H, W) scaled, aspect kept, to cover that square."""
    height, width = image.shape[-2:]
    scale = max(size / height, size / width)
    covering = [max(size, round(height * scale)), max(size, round(width * scale))]
    return TF.center_crop(TF.resize(image, covering, antialias=True), [size, size])


def five_crops(image: torch.Tensor, size: int) -> torch.Tensor:
    """(5, C, size, size): top-left, top-right, bottom-left, bottom-right and central crops of `image` with its
    shorter side resized to `size`."""
    return torch.stack(TF.five_crop(TF.resize(image, size, antialias=True), [size, size]))


def query_reading(method: str, inference: Inference) -> tuple[Inference, Views | None]:
    """How `method` reads the queries: the inference settings, and the views made of each image read at its own
    size (a partial, not a lambda: decoding workers may receive it pickled), or None to read them as usual."""
    if method == "single_query":
        return inference.at_size(NATIVE), None
    if method == "hard_resize":
        return inference, None
    side = square_side(inference.image_size)
    if side is None:
        raise ConfigError(f"option {flag_of(EvalConfig, 'test_method')}={method} crops squares of the evaluation "
                          "size, which --native-size leaves unset: give --image-size N instead")
    return inference, partial(central_crop if method == "central_crop" else five_crops, size=side)


def nearest_crop(distances: np.ndarray, predictions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(Q, k) from per-crop results (Q, crops, k'): all sorted by distance (stable), each database image kept at
    its first (closest) place; missing neighbours (index -1) dropped, rows short of k padded with -1, inf."""
    merged_distances = np.full((len(predictions), k), np.inf, dtype=np.float32)
    merged = np.full((len(predictions), k), -1, dtype=np.int64)
    for query, (row_distances, row) in enumerate(zip(distances, predictions, strict=True)):
        row_distances, row = row_distances.ravel(), row.ravel()
        order = np.argsort(row_distances, kind="stable")
        order = order[row[order] >= 0]
        _, first = np.unique(row[order], return_index=True)
        kept = order[np.sort(first)][:k]
        merged[query, :len(kept)], merged_distances[query, :len(kept)] = row[kept], row_distances[kept]
    return merged_distances, merged


def vote(distances: np.ndarray, predictions: np.ndarray, weight: float) -> np.ndarray:
    """The benchmark's majority voting on one query's (crops, k) results: for n in 1, 5, 10, a database image
    that appears c > 1 times in the crops' first n columns has weight * c / n taken off each of those
    distances. Returns the voted copy."""
    voted = distances.astype(np.float32, copy=True)
    for n in VOTES:
        top = predictions[:, :n]
        values, counts = np.unique(top[top >= 0], return_counts=True)
        for value, count in zip(values[counts > 1], counts[counts > 1], strict=True):
            voted[:, :n][top == value] -= weight * count / n
    return voted


def rank(queries: np.ndarray, search: Search, k: int, method: str, majority_weight: float = 0.01
         ) -> tuple[np.ndarray, np.ndarray]:
    """(distances, predictions) of each query, (Q, k), nearest first, from its descriptor (Q, D) or its crops'
    (Q, 5, D): their mean searched for five_crops; else each crop searched, the results merged by nearest crop,
    after majority voting for maj_voting."""
    if method == "five_crops":
        queries = queries.mean(axis=1)
    if queries.ndim == 2:
        return search(queries, k)
    num_queries, crops, dim = queries.shape
    distances, predictions = search(queries.reshape(num_queries * crops, dim), k)
    distances = distances.reshape(num_queries, crops, -1)
    predictions = predictions.reshape(num_queries, crops, -1)
    if method == "maj_voting":
        distances = np.stack([vote(d, p, majority_weight) for d, p in zip(distances, predictions, strict=True)])
    return nearest_crop(distances, predictions, predictions.shape[-1])  # k, or the database when smaller
