"""The failure browser of `serve --test-set`: every query of a test set with its top matches, right or wrong at N.

A query is right at N when one of its first N matches lies within the positive threshold of its true position,
as Recall@N counts it (docs/architecture.md); a query without a true position is a miss.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cosplace_xs.predict import Prediction, Predictor


@dataclass(frozen=True)
class ScoredQueries:
    """The predictions of a test set's queries, each with `depth` matches, and the radius that makes a match
    right."""

    name: str
    paths: tuple[Path, ...]
    predictions: tuple[Prediction, ...]
    radius: float
    recall_values: tuple[int, ...]

    def hit(self, index: int, n: int) -> bool:
        """Whether query `index` is right at N: a match among its first N within `radius` of its true position."""
        return any(match.error_m is not None and match.error_m <= self.radius
                   for match in self.predictions[index].matches[:n])

    def recall(self, n: int) -> float:
        """Recall@N over all queries, in percent."""
        return 100.0 * sum(self.hit(index, n) for index in range(len(self.paths))) / max(len(self.paths), 1)


def score_queries(predictor: Predictor, name: str, queries: list[Path],
                  recall_values: tuple[int, ...]) -> ScoredQueries:
    """Geolocate every query with as many matches as the largest N needs (at least the page's k)."""
    depth = max(predictor.k, *recall_values)
    predictions = predictor(queries, k=depth)
    return ScoredQueries(name, tuple(queries), tuple(predictions), predictor.radius, recall_values)
