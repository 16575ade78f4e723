"""Database descriptors kept on disk: `<name>.npy` (float16 or float32, read memory-mapped) and `<name>.json`.

The sidecar JSON holds the image paths (relative to the database folder), their UTM and lat/lon positions and
the signature of the model that extracted them (backbone, descriptor size D, a hash of the weights, image
size), so that descriptors are never searched with queries from another model. The `.npy` is filled in place
during extraction (a memory map) and the sidecar is written last: a store without its sidecar is incomplete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import utm
from torch import nn

from cosplace_xs.config import STORE_DTYPES, ModelConfig
from cosplace_xs.data.names import display_name, parse_name
from cosplace_xs.data.test_set import read_utm
from cosplace_xs.errors import CheckpointError, ConfigError
from cosplace_xs.evaluation.descriptors import extract_descriptors
from cosplace_xs.evaluation.inference import NATIVE, ImageSize, Inference, ShorterSide

log = logging.getLogger(__name__)

STORE_FORMAT = "cosplace-xs-descriptors/1"


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of the model's weights (names, dtypes, shapes, values), whatever their device or memory layout."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelSignature:
    """What determines a descriptor: the network, its weights and the image size it was fed."""

    backbone: str
    fc_output_dim: int
    weights_sha256: str
    image_size: ImageSize

    @classmethod
    def of(cls, model: nn.Module, config: ModelConfig, image_size: ImageSize) -> ModelSignature:
        return cls(config.backbone, config.fc_output_dim, weights_digest(model), image_size)

    def to_dict(self) -> dict[str, Any]:
        """As the sidecar stores it: the native size as null, a shorter side as {"shorter_side": N}."""
        size = self.image_size
        stored = None if size is NATIVE else {"shorter_side": size.side} if isinstance(size, ShorterSide) else size
        return {**dataclasses.asdict(self), "image_size": stored}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSignature:
        stored = data["image_size"]
        size = NATIVE if stored is None else ShorterSide(stored["shorter_side"]) if isinstance(stored, dict) else stored
        return cls(**{**data, "image_size": size})


@dataclass(frozen=True, eq=False)
class DescriptorStore:
    """Database descriptors (n, D), row i for paths[i], with positions: UTM (n, 2) and lat/lon (n, 2, NaN
    when unknown)."""

    descriptors: np.ndarray
    paths: tuple[Path, ...]
    utm: np.ndarray
    latlon: np.ndarray
    signature: ModelSignature
    source: Path | None = None  # the .npy file; None for descriptors held in memory only

    def __len__(self) -> int:
        return len(self.paths)

    def check_signature(self, expected: ModelSignature) -> None:
        """Refuse descriptors that another model (or image size) produced: they cannot be compared."""
        where = self.source or "database descriptors"
        for field in dataclasses.fields(ModelSignature):
            found, wanted = getattr(self.signature, field.name), getattr(expected, field.name)
            if found != wanted:
                raise CheckpointError(
                    f"{where}: extracted with {field.name}={found!r}, but the model now used has {wanted!r}; "
                    "extract the database again with this checkpoint (`cosplace-xs eval --save-descriptors`) "
                    "or use the checkpoint and image size the store was made with")


def sidecar_path(path: Path) -> Path:
    return Path(path).with_suffix(".json")


def _array_path(path: Path) -> Path:
    return Path(path).with_suffix(".npy")


def database_positions(paths: Sequence[Path], folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """UTM (n, 2) and lat/lon (n, 2) from the file names; lat/lon from the UTM zone when the name has none, and
    NaN (unknown) where there is no zone or the position is off UTM's grid (local metres such as east 0)."""
    east_north = read_utm(list(paths), "database images", folder)
    latlon = np.full((len(paths), 2), np.nan)
    off_grid = []
    for row, path in enumerate(paths):
        name = parse_name(path)
        if name.lat is not None and name.lon is not None:
            latlon[row] = name.lat, name.lon
        elif name.utm_zone_number is not None and name.utm_zone_letter:
            try:
                latlon[row] = utm.to_latlon(name.utm_east, name.utm_north, name.utm_zone_number,
                                            name.utm_zone_letter)
            except utm.error.OutOfRangeError:
                off_grid.append(path)
    if off_grid:
        log.warning("%d of %d database images in %s have a UTM position that does not convert to lat/lon (UTM east "
                    "100,000-999,999 m, north 0-10,000,000 m), e.g. %s; their lat/lon is unknown and predictions give "
                    "them in UTM only", len(off_grid), len(paths), display_name(folder), display_name(off_grid[0].name))
    return east_north, latlon


def _write_sidecar(path: Path, database_dir: Path, paths: Sequence[Path], east_north: np.ndarray,
                   latlon: np.ndarray, signature: ModelSignature, dtype: str, shape: tuple[int, int]) -> None:
    data: dict[str, Any] = {
        "format": STORE_FORMAT,
        "signature": signature.to_dict(),
        "dtype": dtype,
        "shape": list(shape),
        "database_dir": str(database_dir.resolve()),
        "paths": [p.relative_to(database_dir).as_posix() for p in paths],
        "utm": east_north.tolist(),
        "latlon": [None if np.isnan(row).any() else row.tolist() for row in latlon],
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def build_store(model: nn.Module, database_dir: Path, paths: Sequence[Path], signature: ModelSignature,
                inference: Inference, path: Path | None = None, dtype: str = "float16",
                desc: str = "database") -> DescriptorStore:
    """Extract the database descriptors; with `path`, straight into a memory-mapped `.npy` plus its sidecar."""
    assert signature.image_size == inference.image_size, "the signature names the size the images are read at"
    if dtype not in STORE_DTYPES:
        raise ConfigError(f"descriptor store dtype {dtype!r}: use one of {', '.join(STORE_DTYPES)}")
    east_north, latlon = database_positions(paths, database_dir)
    if path is None:
        descriptors = extract_descriptors(model, paths, inference, desc)
        return DescriptorStore(descriptors, tuple(paths), east_north, latlon, signature)
    array_path = _array_path(path)
    array_path.parent.mkdir(parents=True, exist_ok=True)
    sidecar_path(array_path).unlink(missing_ok=True)  # an array without its sidecar reads as incomplete
    tmp = array_path.with_name(f".{array_path.stem}.tmp.npy")
    shape = (len(paths), signature.fc_output_dim)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        extract_descriptors(model, paths, inference, desc, out=out)
        out.flush()
        del out
        os.replace(tmp, array_path)
    finally:
        tmp.unlink(missing_ok=True)
    _write_sidecar(sidecar_path(array_path), database_dir, paths, east_north, latlon, signature, dtype, shape)
    return load_store(array_path, signature)


def load_store(path: str | Path, expected: ModelSignature | None = None) -> DescriptorStore:
    """Open a store (its `.npy` or `.json`) memory-mapped; with `expected`, refuse another model's store."""
    array_path, sidecar = _array_path(Path(path)), sidecar_path(Path(path))
    if not array_path.is_file() or not sidecar.is_file():
        raise ConfigError(f"{array_path}: descriptor store not found or incomplete (needs {array_path.name} and "
                          f"{sidecar.name}); create it with `cosplace-xs eval --save-descriptors DIR`")
    try:
        data = json.loads(sidecar.read_text())
        signature = ModelSignature.from_dict(data["signature"])
        descriptors = np.load(array_path, mmap_mode="r")
        root = Path(data["database_dir"])
        paths = tuple(root / p for p in data["paths"])
        east_north = np.asarray(data["utm"], dtype=np.float64).reshape(-1, 2)
        latlon = np.array([[np.nan, np.nan] if row is None else row for row in data["latlon"]],
                          dtype=np.float64).reshape(-1, 2)
    except (ValueError, KeyError, TypeError, OSError) as error:
        raise ConfigError(f"{sidecar}: not a readable descriptor store ({error}); extract it again") from None
    if data.get("format") != STORE_FORMAT or descriptors.ndim != 2 or len(descriptors) != len(paths):
        raise ConfigError(f"{array_path}: descriptor store is damaged or of another format (expected "
                          f"{STORE_FORMAT} with one row per image); extract it again")
    store = DescriptorStore(descriptors, paths, east_north, latlon, signature, array_path)
    if expected is not None:
        store.check_signature(expected)
    return store
