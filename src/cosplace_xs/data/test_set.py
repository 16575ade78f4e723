"""A retrieval test set: database and query images with UTM positions, and each query's positives.

Positives of a query are the database images within `positive_dist_threshold` metres (Euclidean on UTM,
inclusive), found with scikit-learn's radius search as in CosPlace (docs/architecture.md).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import KDTree

from cosplace_xs.config import POSITIVE_DIST_THRESHOLD, EvalConfig, TrainConfig
from cosplace_xs.data.layout import TestSetPaths, find_test_set, list_images
from cosplace_xs.data.names import display_name, parse_name
from cosplace_xs.errors import BadFileNameError, ConfigError
from cosplace_xs.options import flag_of, no_flag_of

log = logging.getLogger(__name__)

BAD_NAMES_SHOWN = 20


@dataclass(frozen=True, eq=False)
class TestSet:
    """Database and queries of one test set (paths sorted), their UTM (east, north) and the positives."""

    __test__ = False  # not a pytest test class, despite its name

    name: str
    database_paths: tuple[Path, ...]
    queries_paths: tuple[Path, ...]
    database_utm: np.ndarray  # (num_database, 2) float64 east, north
    queries_utm: np.ndarray  # (num_queries, 2)
    positive_dist_threshold: float
    positives: tuple[np.ndarray, ...]  # per query: int64 database indices within the threshold, nearest first

    @property
    def num_database(self) -> int:
        return len(self.database_paths)

    @property
    def num_queries(self) -> int:
        return len(self.queries_paths)

    @property
    def queries_without_positives(self) -> int:
        return sum(len(p) == 0 for p in self.positives)


def read_utm(paths: list[Path], what: str, folder: Path) -> np.ndarray:
    """(len(paths), 2) float64 UTM east, north from the file names; every bad name is listed in one error."""
    utm, bad = np.empty((len(paths), 2), dtype=np.float64), []
    for row, path in enumerate(paths):
        try:
            name = parse_name(path)
        except BadFileNameError as error:
            shown = display_name(path.relative_to(folder))
            bad.append(f"  {shown}: {str(error).removeprefix(display_name(path.name) + ': ')}")
            continue
        utm[row] = name.utm_east, name.utm_north
    if bad:
        more = f"\n  ... and {len(bad) - BAD_NAMES_SHOWN} more" if len(bad) > BAD_NAMES_SHOWN else ""
        raise BadFileNameError(
            f"{len(bad)} of {len(paths)} {what} in {display_name(folder)} have a bad file name (UTM east and north are "
            "required: @utm_east@utm_north@zone@letter@...@.jpg):\n" + "\n".join(bad[:BAD_NAMES_SHOWN]) + more
            + "\nRename or remove them (`cosplace-xs check-dataset` lists every problem)"
        )
    return utm


def find_positives(database_utm: np.ndarray, queries_utm: np.ndarray, threshold: float) -> tuple[np.ndarray, ...]:
    """Per query, the database indices within `threshold` metres (inclusive), by distance then index: the positives
    of the official code's NearestNeighbors.radius_neighbors, found with a k-d tree."""
    # UTM coordinates are ~10^6 m: centring keeps centimetre precision in the distances
    origin = database_utm.mean(axis=0)
    database, queries = database_utm - origin, queries_utm - origin
    candidates = KDTree(database).query_ball_point(queries, r=threshold * (1 + 1e-9), return_sorted=True)
    positives = []
    for query, found in zip(queries, candidates, strict=True):
        indices = np.asarray(found, dtype=np.int64)
        distances = np.sqrt(((database[indices] - query) ** 2).sum(axis=1))
        keep = distances <= threshold  # the tree's slack above only guards against rounding at the boundary
        positives.append(indices[keep][np.lexsort((indices[keep], distances[keep]))])
    return tuple(positives)


def require_a_positive(test_set: TestSet, way_out: str) -> None:
    """Refuse a test set where no query has a positive: its Recall@N would be 0 whatever the model."""
    if test_set.queries_without_positives < test_set.num_queries:
        return
    origin = test_set.database_utm.mean(axis=0)  # centred, as in find_positives, to keep centimetres at UTM scale
    nearest = KDTree(test_set.database_utm - origin).query(test_set.queries_utm - origin)[0].min()
    needed = math.ceil(float(nearest) * 10) / 10
    flag = flag_of(EvalConfig, "positive_dist_threshold")
    raise ConfigError(
        f"option {flag}={test_set.positive_dist_threshold:g} leaves all {test_set.num_queries} "
        f"queries of {test_set.name} without a positive (its nearest query and database image are {nearest:.2f} m "
        f"apart), so Recall@N would be 0 whatever the model learns; use {flag} >= {needed:g} "
        f"(metres), check that database/ and queries/ show the same places, {way_out}"
    )


def load_test_set(path: str | Path, positive_dist_threshold: float = POSITIVE_DIST_THRESHOLD, split: str = "test",
                  queries_folder: str | None = None) -> TestSet:
    """Read a test set given as `<set>/{database,queries}` or as a dataset root holding `<split>/` (queries: see
    `find_test_set`)."""
    way_out = f"or train with {no_flag_of(TrainConfig, 'validate')}" if split == "val" else "or pass another test set"
    return read_test_set(find_test_set(path, split, queries_folder), positive_dist_threshold, way_out)


def read_test_set(paths: TestSetPaths, positive_dist_threshold: float = POSITIVE_DIST_THRESHOLD,
                  way_out: str = "or pass another test set") -> TestSet:
    """Read the test set of a database and a queries folder (in any layout, see `data.layout`); `way_out` ends
    the error of a set where no query has a positive."""
    if not positive_dist_threshold > 0:
        raise ConfigError(f"option {flag_of(EvalConfig, 'positive_dist_threshold')}={positive_dist_threshold} is out "
                          "of range: > 0 metres")
    database = list_images(paths.database_dir, "database images")
    queries = list_images(paths.queries_dir, "query images")
    database_utm = read_utm(database, "database images", paths.database_dir)
    queries_utm = read_utm(queries, "query images", paths.queries_dir)
    positives = find_positives(database_utm, queries_utm, positive_dist_threshold)
    test_set = TestSet(paths.name, tuple(database), tuple(queries), database_utm, queries_utm,
                       float(positive_dist_threshold), positives)
    require_a_positive(test_set, way_out)
    if test_set.queries_without_positives:
        log.warning("%s: %d of %d queries have no database image within %g m; they count as misses in Recall@N",
                    test_set.name, test_set.queries_without_positives, test_set.num_queries, positive_dist_threshold)
    log.info("test set %s: %d database images, %d queries", test_set.name, test_set.num_database,
             test_set.num_queries)
    return test_set
