"""Recall@N (docs/architecture.md) on a hand-built five-query case, one query without any positive."""

from __future__ import annotations

import numpy as np

from cosplace_xs.evaluation.recall import NO_HIT, count_without_positives, first_hit_ranks, recall_at_n

PREDICTIONS = np.array([
    [4, 1, 2],  # first positive (1) at rank 1: right from N = 2
    [0, 3, 5],  # positive 0 at rank 0: right from N = 1
    [2, 6, 8],  # no positive at all: always a miss
    [9, 8, 7],  # positive 7 at rank 2: right from N = 3
    [1, 2, 3],  # its positive 5 is never retrieved: a miss
])
POSITIVES = [np.array([1]), np.array([0, 7]), np.array([], dtype=np.int64), np.array([7]), np.array([5])]


def test_first_hit_ranks() -> None:
    assert first_hit_ranks(PREDICTIONS, POSITIVES).tolist() == [1, 0, NO_HIT, 2, NO_HIT]


def test_recall_at_n_counts_every_query_in_the_denominator() -> None:
    recalls = recall_at_n(PREDICTIONS, POSITIVES, (1, 2, 3, 5))
    # right at 1: query 1 -> 1/5; at 2: + query 0 -> 2/5; at 3: + query 3 -> 3/5; only 3 predictions exist for N = 5
    assert recalls == {1: 20.0, 2: 40.0, 3: 60.0, 5: 60.0}
    assert count_without_positives(POSITIVES) == 1


def test_recall_is_monotone_and_full_when_every_first_prediction_is_positive() -> None:
    perfect = recall_at_n(np.array([[3, 0], [1, 2]]), [np.array([3]), np.array([1, 2])], (1, 2))
    assert perfect == {1: 100.0, 2: 100.0}
    assert recall_at_n(np.array([[0]]), [np.array([], dtype=np.int64)], (1,)) == {1: 0.0}
