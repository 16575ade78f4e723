"""Geolocating photos: any name and size, the position and error of the best match, confidence, errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    E0,
    N0,
    IndexNet,
    dataset_name,
    encoded_index,
    on_cpu,
    run_command,
    tiny_config,
    unit_rows,
    write_index_image,
    write_test_set,
    write_tiny_checkpoint,
)
from PIL import Image

from cosplace_xs.cli import predict as predict_command
from cosplace_xs.data.layout import list_images
from cosplace_xs.errors import BadImageError, CheckpointError, DatasetLayoutError
from cosplace_xs.evaluation.descriptor_store import ModelSignature, build_store, weights_digest
from cosplace_xs.evaluation.inference import NATIVE
from cosplace_xs.predict import Prediction, confidence, open_database, predict


def test_confidence_is_the_softmax_mass_near_the_best_match() -> None:
    squared = np.array([0.0, 0.0, 2.0])  # cosines 1, 1, 0
    positions = np.array([[0.0, 0.0], [10.0, 0.0], [100.0, 0.0]])
    assert confidence(squared, positions, scale=1.0, radius=25.0) == pytest.approx(2 * math.e / (2 * math.e + 1))
    assert confidence(squared, positions, scale=1.0, radius=5.0) == pytest.approx(math.e / (2 * math.e + 1))
    assert confidence(squared, positions, scale=30.0, radius=25.0) == pytest.approx(1.0)  # e^-30 is nothing


@pytest.fixture
def street(tmp_path: Path) -> Path:
    """Ten database images 30 m apart along a street (indices 0-9 in the order written)."""
    return write_test_set(tmp_path / "street", [(30.0 * i, 0.0) for i in range(10)], [(0.0, 1.0)])


def _index_model(street: Path, copies: dict[int, int]) -> tuple[IndexNet, ModelSignature]:
    """An IndexNet over 16 rows where row `photo` repeats the descriptor of database image `copies[photo]`."""
    table = unit_rows(np.random.default_rng(4), 16)
    for photo, image in copies.items():
        table[photo] = table[image]
    model = IndexNet(table)
    return model, ModelSignature("index", 8, weights_digest(model), 16)


def test_a_photo_outside_the_dataset_layout_and_a_named_one(street: Path, tmp_path: Path) -> None:
    holiday = write_index_image(tmp_path / "photos" / "holiday.png", 12, width=40, height=28)
    named = write_index_image(tmp_path / "photos" / dataset_name(E0 + 100.0, N0 + 100.0), 13, width=20)
    model, signature = _index_model(street, {12: 7, 13: 0})
    paths = list_images(street / "database")
    database = build_store(model, street / "database", paths, signature, on_cpu(16, 4))
    first, second = predict(model, [holiday, named], database, 3, on_cpu(NATIVE, 4))

    assert encoded_index(first.matches[0].path) == 7 and first.matches[0].descriptor_distance == pytest.approx(0)
    assert first.utm == pytest.approx((E0 + 210.0, N0))
    assert first.true_utm is None and first.error_m is None and first.matches[0].error_m is None
    assert first.latlon is not None and 37.7 < first.latlon[0] < 37.8 and -122.5 < first.latlon[1] < -122.4
    assert [m.rank for m in first.matches] == [1, 2, 3]
    assert np.all(np.diff([m.descriptor_distance for m in first.matches]) >= 0)
    assert 0 < first.confidence <= 1

    assert encoded_index(second.matches[0].path) == 0 and second.utm == pytest.approx((E0, N0))
    assert second.true_utm == pytest.approx((E0 + 100.0, N0 + 100.0))
    assert second.error_m == pytest.approx(math.hypot(100.0, 100.0))
    json.dumps(second.to_dict())  # plain JSON types only


def test_database_sources_and_their_errors(street: Path, tmp_path: Path) -> None:
    model, config = IndexNet(unit_rows(np.random.default_rng(0), 16, dim=32)), tiny_config(32)
    store = open_database(street / "database", model, config, on_cpu(16, 4))
    assert len(store) == 10 and store.descriptors.shape == (10, 32)
    assert store.signature == ModelSignature.of(model, config.model, 16)
    build_store(model, street / "database", list(store.paths), store.signature, on_cpu(16, 4),
                path=tmp_path / "db.npy")
    assert open_database(tmp_path / "db.npy", model, config, on_cpu(16, 4)).source == tmp_path / "db.npy"
    other = IndexNet(unit_rows(np.random.default_rng(1), 16, dim=32))
    with pytest.raises(CheckpointError, match=r"db\.npy: extracted with weights_sha256="):
        open_database(tmp_path / "db.json", other, config, on_cpu(16, 4))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="empty: holds no image"):
        open_database(tmp_path / "empty", model, config, on_cpu(16, 4))


def test_an_unreadable_photo_is_named(street: Path, tmp_path: Path) -> None:
    model, signature = _index_model(street, {})
    database = build_store(model, street / "database", list_images(street / "database"), signature, on_cpu(16, 4))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"")
    with pytest.raises(BadImageError, match=r"broken\.jpg: empty file"):
        predict(model, [broken], database, 3, on_cpu(16, 4))


def test_predict_command_writes_table_json_pictures_and_maps(street: Path, tmp_path: Path, capsys) -> None:
    write_tiny_checkpoint(tmp_path / "run" / "best.pt")
    holiday = write_index_image(tmp_path / "holiday.png", 3, width=48, height=36)
    named = write_index_image(tmp_path / dataset_name(E0 + 60.0, N0 + 5.0), 4, width=32)
    out = tmp_path / "out"
    code = run_command(predict_command, ["predict", "--checkpoint", str(tmp_path / "run"), "--database",
                                         str(street / "database"), "--k", "4", "--map", "--out", str(out),
                                         "--device", "cpu", "--num-workers", "0", "--no-progress", str(holiday),
                                         str(named)])
    assert code == 0
    table = capsys.readouterr().out
    assert "holiday.png" in table and "confidence" in table
    (holiday_result, named_result) = json.loads((out / "predictions.json").read_text())
    assert holiday_result["error_m"] is None and len(holiday_result["matches"]) == 4
    best = named_result["matches"][0]
    assert named_result["error_m"] == pytest.approx(math.hypot(best["utm"][0] - E0 - 60.0, best["utm"][1] - N0 - 5))
    metre_maps, maps = sorted(out.glob("*_map.png")), sorted(out.glob("*_map.html"))
    pictures = sorted(set(out.glob("*.png")) - set(metre_maps))
    assert len(pictures) == 2 and len(maps) == 2 and len(metre_maps) == 2
    assert [p.name.removesuffix("_map.png") for p in metre_maps] == [p.name.removesuffix(".png") for p in pictures]
    with Image.open(metre_maps[1]) as metre_map:  # drawn offline, in metres, with the streets and the truth
        assert metre_map.format == "PNG" and metre_map.size == (640, 640)
    with Image.open(pictures[0]) as picture:
        assert picture.format == "PNG" and picture.width > 5 * 160
    lat, lon = holiday_result["latlon"]
    assert f"{lat:.6f}" in maps[0].read_text() and f"{lon:.6f}" in maps[0].read_text()
    true_lat, true_lon = named_result["true_latlon"]
    assert f"{true_lat:.6f}" in maps[1].read_text() and f"{true_lon:.6f}" in maps[1].read_text()


def test_a_photo_that_is_itself_in_the_database_is_found_and_warned_about(street: Path, tmp_path: Path,
                                                                           caplog) -> None:
    paths = list_images(street / "database")
    copy = tmp_path / "copy" / paths[3].name  # same name, same bytes
    link = tmp_path / "link.png"  # another name, the same file
    same_name = tmp_path / "other" / paths[4].name  # same name, other bytes: another photo
    copy.parent.mkdir()
    shutil.copyfile(paths[3], copy)
    link.symlink_to(paths[5])
    write_index_image(same_name, 11)
    model, signature = _index_model(street, {})
    database = build_store(model, street / "database", paths, signature, on_cpu(16, 4))
    found = predict(model, [paths[2], copy, link, same_name], database, 2, on_cpu(16, 4))
    assert [p.in_database for p in found] == [paths[2], paths[3], paths[5], None]
    assert found[0].to_dict()["in_database"] == str(paths[2]) and found[3].to_dict()["in_database"] is None
    assert (f"photo {copy.name} is itself in the database (as {paths[3]}): its match at distance 0 says nothing of "
            "the model") in caplog.text


def test_picture_titles_give_utm_always_and_say_when_latlon_is_unknown() -> None:
    off_grid = Prediction(Path("/photos/q.jpg"), (0.0, 4182000.0), None, 1.0, ())
    assert predict_command.picture_title(off_grid) == "q.jpg: UTM 0.0 E, 4182000.0 N, lat/lon unknown"
    itself = Prediction(Path("/photos/q.jpg"), (551000.25, 4182000.0), (37.78752, -122.41454), 1.0, (),
                        in_database=Path("/db/q.jpg"))
    assert predict_command.picture_title(itself) == ("q.jpg: UTM 551000.2 E, 4182000.0 N, lat/lon 37.787520, "
                                                     "-122.414540 - this photo is itself in the database")


def test_the_picture_of_a_photo_without_a_geotag_says_where_each_match_lies(street: Path, tmp_path: Path) -> None:
    """Under the photo its confidence; under each match its descriptor distance and its offset from the prediction
    (the prediction is the best match's position, so #1 lies at +0 E +0 N)."""
    from cosplace_xs.cli.predict import picture_notes

    write_tiny_checkpoint(tmp_path / "run" / "best.pt")
    holiday = write_index_image(tmp_path / "holiday.png", 3, width=48, height=36)
    out = tmp_path / "out"
    assert run_command(predict_command, ["predict", "--checkpoint", str(tmp_path / "run"), "--database",
                                         str(street / "database"), "--k", "3", "--out", str(out), "--device", "cpu",
                                         "--num-workers", "0", "--no-progress", str(holiday)]) == 0
    (result,) = json.loads((out / "predictions.json").read_text())
    from cosplace_xs.predict import Match, Prediction

    prediction = Prediction(holiday, tuple(result["utm"]), None, result["confidence"], tuple(
        Match(m["rank"], Path(m["path"]), m["descriptor_distance"], tuple(m["utm"]), None, None)
        for m in result["matches"]))
    notes = picture_notes(prediction)
    assert notes["query_note"] == f"confidence {result['confidence']:.2f}"
    first = result["matches"][0]
    assert notes["match_notes"][0] == f"d {first['descriptor_distance']:.3f}, +0 E +0 N m"
    with Image.open(out / "000-holiday.png") as picture:  # two caption lines
        assert picture.height == 22 + 160 + 2 * 20 + 2 * 6
