"""Geolocating photos: the position of each photo's nearest database images in descriptor space.

Any JPEG or PNG of any size is a valid query. A photo whose file name is in the dataset format
(`@utm_east@utm_north@...`) has a known true position, and its error in metres is reported.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from cosplace_xs.config import POSITIVE_DIST_THRESHOLD, ApproximateConfig, InferenceConfig, RunConfig
from cosplace_xs.data.layout import list_images
from cosplace_xs.data.names import display_name, parse_name
from cosplace_xs.data.split_cache import CACHE_ENV
from cosplace_xs.errors import BadFileNameError, ConfigError
from cosplace_xs.evaluation.descriptor_store import DescriptorStore, ModelSignature, build_store, load_store
from cosplace_xs.evaluation.descriptors import extract_descriptors
from cosplace_xs.evaluation.inference import Inference, eval_image_size, scoring_options
from cosplace_xs.evaluation.model_loading import place_model, read_trained_model
from cosplace_xs.evaluation.retrieval import approximate_knn, knn
from cosplace_xs.options import flag_of

if TYPE_CHECKING:  # OpenCV is imported only where re-ranking runs
    from cosplace_xs.evaluation.rerank import Reranker

log = logging.getLogger(__name__)

STORE_SUFFIXES = (".npy", ".json")


@dataclass(frozen=True)
class Match:
    """One of the k nearest database images: rank (1 = best), L2 descriptor distance, position."""

    rank: int
    path: Path
    descriptor_distance: float
    utm: tuple[float, float]
    latlon: tuple[float, float] | None
    error_m: float | None  # metres from the query's true position, when it is known
    inliers: int | None = None  # of the geometric verification, when re-ranking verified this match


@dataclass(frozen=True)
class Prediction:
    """Where a photo was taken, by its best match; the k matches; a confidence in [0, 1] (see `confidence`)."""

    query: Path
    utm: tuple[float, float]
    latlon: tuple[float, float] | None
    confidence: float
    matches: tuple[Match, ...]
    true_utm: tuple[float, float] | None = None
    true_latlon: tuple[float, float] | None = None
    error_m: float | None = None
    in_database: Path | None = None  # the database file that is this very photo: its match says nothing

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["query"] = str(self.query)
        data["in_database"] = None if self.in_database is None else str(self.in_database)
        for match in data["matches"]:
            match["path"] = str(match["path"])
        return data


def confidence(squared_distances: np.ndarray, positions: np.ndarray, scale: float, radius: float) -> float:
    """Share of the top-k similarity mass that agrees with the best match's place.

    Each match j gets the weight softmax_j(s * cos_j), the probability CosFace training (scale s) gives to
    "the query shows j's place" among the k candidates, with cos_j = 1 - d_j^2 / 2 for L2-normalised
    descriptors at squared distance d_j^2. The confidence sums the weights of the matches within `radius`
    metres of the best match (the best one included): 1 when every candidate points to the same place, about
    1/k when equally similar candidates are scattered over the city.
    """
    logits = scale * (1.0 - squared_distances.astype(np.float64) / 2.0)
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    near_best = np.hypot(*(positions - positions[0]).T) <= radius
    return float(weights[near_best].sum())


def true_position(path: Path) -> tuple[tuple[float, float], tuple[float, float] | None] | None:
    """(UTM, lat/lon) of a photo named in the dataset format, or None for any other name."""
    try:
        name = parse_name(path)
    except BadFileNameError:
        return None
    latlon = (name.lat, name.lon) if name.lat is not None and name.lon is not None else None
    return (name.utm_east, name.utm_north), latlon


def _latlon(row: np.ndarray) -> tuple[float, float] | None:
    return None if np.isnan(row).any() else (float(row[0]), float(row[1]))


def _same_file(photo: Path, candidate: Path) -> bool:
    try:
        return filecmp.cmp(photo, candidate, shallow=False)
    except OSError:  # a store's image moved or deleted since: not comparable, so not the same
        return False


def find_in_database(photos: Sequence[Path], database: DescriptorStore) -> list[Path | None]:
    """Per photo, the database file that is that very photo (the same file once links are resolved, or the same
    name and the same bytes), else None: retrieving it finds the photo itself, at distance 0."""
    # each database folder resolved once, on plain strings: resolving every file would cost seconds
    names = [os.path.split(path) for path in map(str, database.paths)]
    folders = {folder: os.path.realpath(folder) for folder in {folder for folder, _ in names}}
    resolved = {os.path.join(folders[folder], name): path
                for (folder, name), path in zip(names, database.paths, strict=True)}
    by_name: dict[str, list[Path]] = {}
    for path in database.paths:
        by_name.setdefault(path.name, []).append(path)
    found = []
    for photo in photos:
        same = resolved.get(os.path.realpath(photo))
        if same is None:
            same = next((path for path in by_name.get(photo.name, []) if _same_file(photo, path)), None)
        found.append(same)
    return found


def _prediction(query: Path, squared: np.ndarray, indices: np.ndarray, database: DescriptorStore, scale: float,
                radius: float, in_database: Path | None, inliers: np.ndarray | None = None) -> Prediction:
    truth = true_position(query)
    positions = database.utm[indices]
    errors = [None] * len(indices) if truth is None else np.hypot(*(positions - np.array(truth[0])).T).tolist()
    matches = tuple(
        Match(rank + 1, database.paths[index], float(np.sqrt(max(float(d), 0.0))),
              (float(positions[rank, 0]), float(positions[rank, 1])), _latlon(database.latlon[index]), errors[rank],
              None if inliers is None or inliers[rank] < 0 else int(inliers[rank]))
        for rank, (d, index) in enumerate(zip(squared, indices, strict=True)))
    best = matches[0]
    return Prediction(query, best.utm, best.latlon, confidence(squared, positions, scale, radius), matches,
                      None if truth is None else truth[0], None if truth is None else truth[1], best.error_m,
                      in_database)


def predict(model: nn.Module, image_paths: Sequence[Path], database: DescriptorStore, k: int, inference: Inference,
            cosface_scale: float = 30.0, radius: float = POSITIVE_DIST_THRESHOLD,
            approximate: ApproximateConfig | None = None, reranker: Reranker | None = None) -> list[Prediction]:
    """Geolocate each photo by its k nearest database descriptors (exact L2 search, or through the IVF or HNSW
    index of `approximate`, whose missing neighbours are left out). With `reranker`, the top K are re-ordered by
    geometric verification before the first k are kept, and each verified match has its inliers.

    Photos are read at the database's image size (its signature), so that both sides are comparable;
    `radius` (metres) is the agreement radius of `confidence`, the positive threshold of docs/architecture.md.
    """
    queries = extract_descriptors(model, image_paths, inference.at_size(database.signature.image_size), "photos")
    search_k = k if reranker is None else max(k, reranker.k)
    if approximate is None:
        squared, indices = knn(database.descriptors, queries, search_k)
    else:
        squared, indices = approximate_knn(database.descriptors, queries, search_k, approximate)
        if (indices[:, 0] < 0).any():  # neighbours are sorted: a row without its first has none
            photo = image_paths[int(np.flatnonzero(indices[:, 0] < 0)[0])]
            raise ConfigError(f"the {approximate.kind} index found no database image for photo {photo}: raise "
                              f"{flag_of(ApproximateConfig, 'nprobe')} or search without "
                              f"{flag_of(ApproximateConfig, 'kind')}")
    in_database = find_in_database([Path(p) for p in image_paths], database)
    for photo, same in zip(image_paths, in_database, strict=True):
        if same is not None:
            log.warning("photo %s is itself in the database (as %s): its match at distance 0 says nothing of the model",
                        display_name(Path(photo).name), display_name(same))
    inliers = np.full(indices.shape, -1)
    if reranker is not None:
        reranked = reranker(image_paths, database.paths, indices)
        squared, indices, inliers = reranked.apply(squared), reranked.apply(indices), reranked.inliers
    squared, indices, inliers = squared[:, :k], indices[:, :k], inliers[:, :k]
    found = indices >= 0
    return [_prediction(Path(query), squared[row][found[row]], indices[row][found[row]], database, cosface_scale,
                        radius, in_database[row], inliers[row][found[row]])
            for row, query in enumerate(image_paths)]


def default_store_cache() -> Path:
    """`$COSPLACE_XS_CACHE/descriptors`, else `~/.cache/cosplace-xs/descriptors`."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "cosplace-xs") / "descriptors"


def cached_store_path(cache_dir: Path, folder: Path, paths: Sequence[Path], signature: ModelSignature) -> Path:
    """The store file of these database images under this model: the key hashes the signature (weights, image
    size), the folder and each image's name, size and mtime, so that a changed image or model is extracted
    again."""
    files = []
    for path in paths:
        stat = path.stat()
        files.append([path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns])
    key = json.dumps({"signature": signature.to_dict(), "folder": os.path.realpath(folder), "files": files})
    return cache_dir / f"{folder.name[:40]}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.npy"


def open_database(source: Path, model: nn.Module, config: RunConfig, inference: Inference,
                  cache_dir: Path | None = None) -> DescriptorStore:
    """A descriptor store file (`.npy` or `.json`, checked against the model and `inference.image_size`), or a
    folder of database images (named in the dataset format) whose descriptors are extracted now: in memory, or
    with `cache_dir` into a store there that the next call with the same model and images reads instead."""
    signature = ModelSignature.of(model, config.model, inference.image_size)
    if source.suffix.lower() in STORE_SUFFIXES:
        return load_store(source, signature)
    paths = list_images(source, "database images")
    if cache_dir is None:
        log.info("extracting %d database descriptors from %s", len(paths), source)
        return build_store(model, source, paths, signature, inference)
    cached = cached_store_path(cache_dir, source, paths, signature)
    if cached.is_file() and cached.with_suffix(".json").is_file():
        log.info("database descriptors of %s read from %s", source, cached)
        return load_store(cached, signature)
    log.info("extracting %d database descriptors from %s into %s", len(paths), source, cached)
    return build_store(model, source, paths, signature, inference, path=cached)


@dataclass
class Predictor:
    """A model and its database descriptors, loaded once, geolocating photos call after call; safe to call from
    several threads at once (one prediction runs at a time: the model is not shared mid-batch)."""

    model: nn.Module
    database: DescriptorStore
    inference: Inference
    k: int
    cosface_scale: float = 30.0
    radius: float = POSITIVE_DIST_THRESHOLD
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def open(cls, checkpoint: Path, database: Path, options: InferenceConfig, scoring: dict[str, Any], k: int,
             progress: bool, cache_dir: Path | None = None) -> Predictor:
        """The checkpoint's model placed as `options` say, its database (see `open_database`), and the radius of
        `confidence`: the `scoring` options given, else the checkpoint's."""
        model, config = read_trained_model(checkpoint)
        inference = Inference.resolve(options, eval_image_size(config, options), progress=progress)
        model = place_model(model, config, inference.device, options.compile)
        store = open_database(database, model, config, inference, cache_dir)
        radius = scoring_options(config, scoring).positive_dist_threshold
        return cls(model, store, inference, min(k, len(store)), config.loss.scale, radius)

    def __call__(self, image_paths: Sequence[Path], k: int | None = None) -> list[Prediction]:
        """`predict` with this model and database; `k` matches per photo instead of the predictor's own."""
        with self._lock:
            return predict(self.model, image_paths, self.database, k or self.k, self.inference, self.cosface_scale,
                           self.radius)
