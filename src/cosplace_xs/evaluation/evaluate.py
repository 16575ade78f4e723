"""Scoring a model on a test set: descriptors, exact k-NN, Recall@N (docs/architecture.md); no files written."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from cosplace_xs.config import ApproximateConfig, EvalConfig
from cosplace_xs.data.test_set import TestSet
from cosplace_xs.errors import ConfigError, DatasetLayoutError
from cosplace_xs.evaluation.descriptors import extract_descriptors
from cosplace_xs.evaluation.inference import Inference
from cosplace_xs.evaluation.recall import recall_at_n
from cosplace_xs.evaluation.retrieval import approximate_knn, knn
from cosplace_xs.evaluation.test_methods import query_reading, rank

if TYPE_CHECKING:  # OpenCV is imported only where re-ranking runs
    from cosplace_xs.evaluation.rerank import Reranker


@dataclass
class EvalResult:
    """Recall@N (percent) of one test set, with the predictions (database indices, nearest first) and their
    squared L2 descriptor distances, (num_queries, k) with k = min(max N, num_database)."""

    test_set: str
    recalls: dict[int, float]
    num_database: int
    num_queries: int
    queries_without_positives: int
    seconds: float
    predictions: np.ndarray
    distances: np.ndarray
    approximate_recalls: dict[int, float] | None = None
    test_method: str = "hard_resize"
    query_seconds: float = 0.0  # the queries' extraction and search, which the test method changes
    rerank_recalls: dict[int, float] | None = None  # after re-ranking (see `rerank_result`)
    rerank_predictions: np.ndarray | None = None  # (num_queries, k), re-ranked
    rerank_seconds_per_query: float = 0.0


def _check_sizes(test_set: TestSet, database_descriptors: np.ndarray | None) -> None:
    if test_set.num_database == 0 or test_set.num_queries == 0:
        raise DatasetLayoutError(
            f"test set {test_set.name}: {test_set.num_database} database images and {test_set.num_queries} "
            "queries; both are needed to compute Recall@N")
    if database_descriptors is not None and len(database_descriptors) != test_set.num_database:
        raise ConfigError(
            f"test set {test_set.name}: {len(database_descriptors)} database descriptors given for "
            f"{test_set.num_database} database images; extract them again for this database")


def evaluate_model(model: nn.Module, test_set: TestSet, config: EvalConfig, inference: Inference,
                   database_descriptors: np.ndarray | None = None,
                   approximate: ApproximateConfig | None = None,
                   query_descriptors: np.ndarray | None = None) -> EvalResult:
    """Recall@N (N in `config.recall_values`) of `model` (on `inference.device`; its train/eval mode is
    restored afterwards) on `test_set`.

    Database and queries are extracted as `inference` says, unless database descriptors are given (e.g. a
    memory-mapped store); query descriptors given (e.g. extracted by several processes) must be those the test
    method reads. With `approximate`, the same queries are also searched through an IVF index and its
    Recall@N is reported beside the exact one.
    """
    _check_sizes(test_set, database_descriptors)
    start = time.perf_counter()
    if database_descriptors is None:
        database_descriptors = extract_descriptors(model, test_set.database_paths, inference,
                                                   f"{test_set.name} database")
    query_start = time.perf_counter()
    method, weight = config.test_method, config.majority_weight
    queries = query_descriptors
    if queries is None:
        query_inference, views = query_reading(method, inference)
        queries = extract_descriptors(model, test_set.queries_paths, query_inference, f"{test_set.name} queries",
                                      views=views)
    k = max(config.recall_values)
    distances, predictions = rank(queries, partial(knn, database_descriptors), k, method, weight)
    query_seconds = time.perf_counter() - query_start
    recalls = recall_at_n(predictions, test_set.positives, config.recall_values)
    approximate_recalls = None
    if approximate is not None:
        search = partial(approximate_knn, database_descriptors, options=approximate)
        _, approximate_predictions = rank(queries, search, k, method, weight)
        approximate_recalls = recall_at_n(approximate_predictions, test_set.positives, config.recall_values)
    return EvalResult(test_set.name, recalls, test_set.num_database, test_set.num_queries,
                      test_set.queries_without_positives, time.perf_counter() - start, predictions, distances,
                      approximate_recalls, method, query_seconds)


def rerank_result(result: EvalResult, test_set: TestSet, reranker: Reranker,
                  recall_values: tuple[int, ...]) -> EvalResult:
    """`result` with its predictions' top K re-ranked by geometric verification and their Recall@N."""
    reranked = reranker(test_set.queries_paths, test_set.database_paths, result.predictions)
    predictions = reranked.apply(result.predictions)
    return dataclasses.replace(result, rerank_recalls=recall_at_n(predictions, test_set.positives, recall_values),
                               rerank_predictions=predictions, rerank_seconds_per_query=reranked.seconds_per_query)
