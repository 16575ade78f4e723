"""Recall@N (docs/architecture.md): the share of all queries with a positive among their first N predictions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from cosplace_xs.config import RECALL_VALUES

NO_HIT = np.iinfo(np.int64).max


def first_hit_ranks(predictions: np.ndarray, positives: Sequence[np.ndarray]) -> np.ndarray:
    """Per query, the 0-based rank of its first prediction that is a positive, or NO_HIT when none is."""
    predictions = np.asarray(predictions)
    assert predictions.ndim == 2 and len(predictions) == len(positives), "one row of predictions per query"
    ranks = np.full(len(predictions), NO_HIT, dtype=np.int64)
    for query, (row, query_positives) in enumerate(zip(predictions, positives, strict=True)):
        hits = np.flatnonzero(np.isin(row, query_positives))
        if len(hits):
            ranks[query] = hits[0]
    return ranks


def recall_at_n(predictions: np.ndarray, positives: Sequence[np.ndarray],
                recall_values: Iterable[int] = RECALL_VALUES) -> dict[int, float]:
    """Recall@N in percent for each N: a query counts at N if one of its first N predictions is a positive.

    The denominator is every query, so queries without any positive count as misses. With fewer than N
    predictions per query (a database smaller than N), all of them are looked at.
    """
    ranks = first_hit_ranks(predictions, positives)
    if len(ranks) == 0:
        return {int(n): 0.0 for n in recall_values}
    return {int(n): float(100.0 * np.count_nonzero(ranks < n) / len(ranks)) for n in recall_values}


def count_without_positives(positives: Sequence[np.ndarray]) -> int:
    """How many queries have no positive at all (they can never be right)."""
    return sum(len(p) == 0 for p in positives)
