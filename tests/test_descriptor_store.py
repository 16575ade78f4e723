"""Descriptor stores: memory-mapped round trip (float16, float32), same recalls, signature checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import utm
from helpers import (
    E0,
    N0,
    IndexNet,
    encoded_index,
    on_cpu,
    run_command,
    unit_rows,
    write_test_set,
    write_tiny_checkpoint,
)

from cosplace_xs.cli import eval as eval_command
from cosplace_xs.config import EvalConfig
from cosplace_xs.data.layout import find_test_set
from cosplace_xs.data.test_set import load_test_set
from cosplace_xs.errors import CheckpointError, ConfigError
from cosplace_xs.evaluation.descriptor_store import (
    ModelSignature,
    build_store,
    database_positions,
    load_store,
    weights_digest,
)
from cosplace_xs.evaluation.evaluate import evaluate_model
from cosplace_xs.evaluation.inference import NATIVE, ImageSize, ShorterSide


@pytest.fixture
def grid_set(tmp_path: Path) -> Path:
    """A 6 x 5 grid of database images 15 m apart, and 8 queries among them."""
    database = [(15.0 * i, 15.0 * j) for i in range(6) for j in range(5)]
    queries = [(15.0 * i + 2, 15.0 * (i % 5) + 3) for i in range(6)] + [(400.0, 0.0), (7.0, 31.0)]
    return write_test_set(tmp_path / "grid", database, queries)


def _model_and_signature(seed: int = 0, image_size: ImageSize = 16) -> tuple[IndexNet, ModelSignature]:
    model = IndexNet(unit_rows(np.random.default_rng(seed), 38, dim=16))
    return model, ModelSignature("index", 16, weights_digest(model), image_size)


@pytest.mark.parametrize(("dtype", "tolerance"), [("float32", 0.0), ("float16", 1e-3)])
def test_saved_descriptors_reload_memory_mapped_with_the_same_recalls(grid_set: Path, tmp_path: Path, dtype: str,
                                                                     tolerance: float) -> None:
    test_set = load_test_set(grid_set)
    model, signature = _model_and_signature()
    config, at_16 = EvalConfig(), on_cpu(16, 32)
    direct = evaluate_model(model, test_set, config, at_16)
    database_dir = find_test_set(grid_set).database_dir
    build_store(model, database_dir, test_set.database_paths, signature, on_cpu(16, 7),
                path=tmp_path / "store" / "grid", dtype=dtype)
    store = load_store(tmp_path / "store" / "grid.json", signature)
    assert isinstance(store.descriptors, np.memmap) and store.descriptors.dtype == np.dtype(dtype)
    expected = model.table.numpy()[[encoded_index(p) for p in test_set.database_paths]]
    np.testing.assert_allclose(store.descriptors, expected, atol=tolerance)
    assert store.paths == test_set.database_paths and store.source == tmp_path / "store" / "grid.npy"
    np.testing.assert_array_equal(store.utm, test_set.database_utm)
    lat, lon = utm.to_latlon(E0 + 15.0, N0, 10, "S")  # the name carries lat/lon with 5 decimals
    np.testing.assert_allclose(store.latlon[5], (lat, lon), atol=1e-5)
    reloaded = evaluate_model(model, test_set, config, at_16, database_descriptors=store.descriptors)
    assert reloaded.recalls == direct.recalls
    np.testing.assert_allclose(reloaded.distances, direct.distances, atol=10 * tolerance + 1e-6)


def test_a_store_of_another_model_or_image_size_is_refused(grid_set: Path, tmp_path: Path) -> None:
    test_set = load_test_set(grid_set)
    model, signature = _model_and_signature(seed=0)
    build_store(model, find_test_set(grid_set).database_dir, test_set.database_paths, signature, on_cpu(16, 8),
                path=tmp_path / "grid.npy")
    _, other_weights = _model_and_signature(seed=1)
    with pytest.raises(CheckpointError, match=r"grid\.npy: extracted with weights_sha256="):
        load_store(tmp_path / "grid.npy", other_weights)
    _, native = _model_and_signature(seed=0, image_size=NATIVE)
    with pytest.raises(CheckpointError, match="image_size=16, but the model now used has native"):
        load_store(tmp_path / "grid.npy", native)
    _, shorter = _model_and_signature(seed=0, image_size=ShorterSide(16))
    assert ModelSignature.from_dict(json.loads(json.dumps(shorter.to_dict()))) == shorter
    with pytest.raises(CheckpointError, match="image_size=16, but the model now used has shorter side 16"):
        load_store(tmp_path / "grid.npy", shorter)


def test_incomplete_or_damaged_stores_are_clear_errors(grid_set: Path, tmp_path: Path) -> None:
    test_set = load_test_set(grid_set)
    model, signature = _model_and_signature()
    build_store(model, find_test_set(grid_set).database_dir, test_set.database_paths, signature, on_cpu(16, 8),
                path=tmp_path / "grid.npy")
    sidecar = tmp_path / "grid.json"
    data = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**data, "paths": data["paths"][:3]}))
    with pytest.raises(ConfigError, match="one row per image"):
        load_store(tmp_path / "grid.npy")
    sidecar.unlink()
    with pytest.raises(ConfigError, match=r"grid\.npy: descriptor store not found or incomplete"):
        load_store(tmp_path / "grid.npy")
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_weights_digest_follows_the_values_not_the_memory_layout() -> None:
    model = torch.nn.Conv2d(3, 4, 3)
    digest = weights_digest(model)
    assert weights_digest(model.to(memory_format=torch.channels_last)) == digest
    with torch.no_grad():
        model.weight[0, 0, 0, 0] += 1e-3
    assert weights_digest(model) != digest


def test_eval_command_saves_then_reuses_descriptors(grid_set: Path, tmp_path: Path) -> None:
    write_tiny_checkpoint(tmp_path / "best.pt")
    common = ["eval", "--checkpoint", str(tmp_path / "best.pt"), str(grid_set), "--device", "cpu", "--num-workers",
              "0", "--no-progress", "--store-dtype", "float32"]
    assert run_command(eval_command, [*common, "--save-descriptors", str(tmp_path / "stores"),
                                      "--out", str(tmp_path / "first")]) == 0
    assert len(list((tmp_path / "stores").glob("*grid.npy"))) == 1
    assert run_command(eval_command, [*common, "--descriptors", str(tmp_path / "stores"),
                                      "--out", str(tmp_path / "second")]) == 0
    first, second = (json.loads(next((tmp_path / d).glob("eval-*.json")).read_text())["results"][0]
                     for d in ("first", "second"))
    assert ({k: v for k, v in first.items() if not k.endswith("seconds")}
            == {k: v for k, v in second.items() if not k.endswith("seconds")})
    # a test set of the same name (so the same store file) but another database
    other = write_test_set(tmp_path / "elsewhere" / tmp_path.name / "grid", [(0.0, 0.0)], [(1.0, 1.0)])
    with pytest.raises(ConfigError, match="holds the descriptors of another database"):
        run_command(eval_command, [*common[:3], str(other), *common[4:], "--descriptors", str(tmp_path / "stores")])


def test_positions_outside_utms_range_keep_their_utm_and_leave_latlon_unknown(tmp_path: Path, caplog) -> None:
    names = ["@0.0@4182000.0@10@S@@@@@@@@@@@.jpg",  # east 0 m: not on UTM's grid, no lat/lon
             "@551000.0@4182000.0@10@S@@@@@@@@@@@.jpg",  # converted from zone 10S
             "@551000.0@4182000.0@@@@@@@@@@@@@.jpg",  # no zone: no lat/lon
             "@1.0@2.0@10@S@37.5@-122.5@@@@@@@@@.jpg"]  # its own lat/lon, whatever its UTM
    paths = [tmp_path / name for name in names]
    east_north, latlon = database_positions(paths, tmp_path)
    assert east_north.tolist() == [[0.0, 4182000.0], [551000.0, 4182000.0], [551000.0, 4182000.0], [1.0, 2.0]]
    assert np.isnan(latlon[[0, 2]]).all()
    assert latlon[1].tolist() == list(utm.to_latlon(551000.0, 4182000.0, 10, "S"))
    assert latlon[3].tolist() == [37.5, -122.5]
    assert (f"1 of 4 database images in {tmp_path} have a UTM position that does not convert to lat/lon (UTM east "
            "100,000-999,999 m, north 0-10,000,000 m), e.g. @0.0@4182000.0@10@S@@@@@@@@@@@.jpg; their lat/lon is "
            "unknown and predictions give them in UTM only") in caplog.text
