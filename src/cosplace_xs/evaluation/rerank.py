"""Re-ranking by geometric verification: the top K candidates of the global search re-ordered by the inliers of
a RANSAC model fitted to local features matched between the query and each candidate (`evaluation/matchers.py`).

Candidates beyond K keep their global order after the top K; equal inlier counts keep their global order too
(a stable sort), so a query that no candidate verifies keeps its global ranking.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cosplace_xs.config import MAX_IMAGE_PIXELS, RerankConfig
from cosplace_xs.data.images import read_image
from cosplace_xs.evaluation.matchers import Matcher, make_matcher
from cosplace_xs.progress import progress_bar

# queries whose candidates' features are held at once: each database image is described once per batch (the
# candidates of neighbouring queries overlap), and 16 x K SIFT sets of 1,000 x 128 floats stay under 200 MB at K 20
QUERY_BATCH = 16
MAX_AUTO_WORKERS = 8
NOT_VERIFIED = -1  # the inliers of a candidate beyond K, or of a neighbour an approximate search did not find


def read_gray(path: str | Path, size: int, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """The image as grayscale uint8 (H, W), resized (aspect kept) so that its longer side is `size` pixels."""
    rgb = read_image(path, max_pixels=max_pixels).permute(1, 2, 0).numpy()
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    height, width = gray.shape
    scale = size / max(height, width)
    if scale == 1:
        return gray
    # INTER_AREA averages the pixels a downscaled one covers (no aliasing), INTER_LINEAR interpolates upscaling
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(gray, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=interpolation)


def rerank_order(scores: np.ndarray) -> np.ndarray:
    """Column order of each row by descending score, ties in their given order: (Q, n) -> (Q, n) indices."""
    return np.argsort(-scores, axis=1, kind="stable")


@dataclass
class Reranked:
    """The new order of each query's candidates and the inliers of each, in that order."""

    order: np.ndarray  # (Q, n): column j of the re-ranked row is column order[q, j] of the global one
    inliers: np.ndarray  # (Q, n) int64, NOT_VERIFIED beyond K
    seconds_per_query: float

    def apply(self, rows: np.ndarray) -> np.ndarray:
        """`rows` (Q, n), e.g. database indices or descriptor distances, in the re-ranked order."""
        return np.take_along_axis(rows, self.order, axis=1)


class Reranker:
    """A matcher (built now, so that a missing learned matcher fails before any descriptor is extracted) and
    the options of the re-ranking."""

    def __init__(self, config: RerankConfig, max_pixels: int = MAX_IMAGE_PIXELS, progress: bool = False,
                 matcher: Matcher | None = None) -> None:
        assert config.k is not None, "re-ranking needs its K"
        self.config, self.max_pixels, self.progress = config, max_pixels, progress
        self.k = config.k
        self.matcher = matcher or make_matcher(config)
        self.workers = config.workers or min(MAX_AUTO_WORKERS, os.cpu_count() or 1)

    def _features(self, path: str | Path) -> Any:
        return self.matcher.features(read_gray(path, self.config.image_size, self.max_pixels))

    def __call__(self, query_paths: Sequence[str | Path], database_paths: Sequence[str | Path],
                 predictions: np.ndarray) -> Reranked:
        """Re-rank `predictions` (Q, n) database indices, nearest first (-1: no neighbour), of the queries."""
        start = time.perf_counter()
        k = min(self.k, predictions.shape[1])
        inliers = np.full(predictions.shape, NOT_VERIFIED, dtype=np.int64)
        with ThreadPoolExecutor(self.workers) as pool, \
                progress_bar(len(query_paths), "re-ranking", "query", self.progress) as bar:
            for first in range(0, len(query_paths), QUERY_BATCH):
                rows = range(first, min(first + QUERY_BATCH, len(query_paths)))
                candidates = sorted({int(i) for i in predictions[rows.start:rows.stop, :k].ravel() if i >= 0})
                described = list(pool.map(self._features, [query_paths[row] for row in rows]
                                          + [database_paths[index] for index in candidates]))
                queries = dict(zip(rows, described, strict=False))
                database = dict(zip(candidates, described[len(rows):], strict=True))
                pairs = [(row, column) for row in rows for column in range(k) if predictions[row, column] >= 0]
                scores = pool.map(self.matcher.verify, [queries[row] for row, _ in pairs],
                                  [database[int(predictions[pair])] for pair in pairs])
                for pair, score in zip(pairs, scores, strict=True):
                    inliers[pair] = score
                bar.update(len(rows))
        order = rerank_order(inliers)
        return Reranked(order, np.take_along_axis(inliers, order, axis=1),
                        (time.perf_counter() - start) / max(len(query_paths), 1))
