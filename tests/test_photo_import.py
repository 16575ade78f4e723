"""import-photos: EXIF GPS and CSV positions to dataset-format names, the unplaced and skipped listings, the
split into database and queries, sources left as they were, and a result that eval, predict and train accept."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import INFERENCE_FLAGS, ONE_STEP_FLAGS, run_main, the_error, write_image, write_tiny_checkpoint
from PIL import Image

from cosplace_xs.data.exif import GPS_IFD, Position, gps_position
from cosplace_xs.data.names import parse_name
from cosplace_xs.data.photo_import import draw_queries, read_positions_csv
from cosplace_xs.errors import ConfigError

# 37 46' 30" N, 122 25' 10.5" W (San Francisco), facing 90.5 degrees: by Snyder's transverse Mercator series
# (USGS Professional Paper 1395, eq. 8-9 and 8-10, WGS84, k0 = 0.9996, zone 10's meridian 123 W), UTM 10S
# east 551114.554 m, north 4181009.876 m
HAND_CHECKED = "@0551114.55@4181009.88@10@S@037.77500@-122.41958@@@90.5@@@@@IMG_0001@.jpg"
# four places about 49 m apart along the parallel (2 seconds of longitude), two photos 2.4 m apart at each
PLACES = (10.5, 12.5, 14.5, 16.5)


def write_geotagged(path: Path, lon_seconds: float, heading: float | None = 0.0, color: int = 90) -> Path:
    """A 32-pixel JPEG taken at 37 46' 30" N, 122 25' `lon_seconds`" W, with GPSImgDirection `heading`."""
    gps = {1: "N", 2: (37.0, 46.0, 30.0), 3: "W", 4: (122.0, 25.0, lon_seconds)}
    if heading is not None:
        gps.update({16: "T", 17: heading})
    exif = Image.Exif()
    exif[GPS_IFD] = gps
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), (color, 120, 150)).save(path, exif=exif)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A phone's folder: 7 photos with EXIF GPS (the first the hand-checked one, the last without a heading), one
    placed by the CSV only, one
    with the first's name and place in a sub-folder, one without a position, a text file and a broken JPEG."""
    root = tmp_path_factory.mktemp("photos") / "phone"
    write_geotagged(root / "IMG_0001.jpg", 10.5, heading=90.5)
    for index, seconds in enumerate((10.6, 12.5, 12.6, 14.5, 14.6, 16.5), start=2):
        write_geotagged(root / f"IMG_{index:04d}.jpg", seconds, heading=None if index == 7 else 0.0,
                        color=20 * index)
    write_image(root / "scan.jpg")  # no EXIF: placed by the CSV
    write_geotagged(root / "copy" / "IMG_0001.jpg", 10.5, heading=90.5)
    write_image(root / "no_gps.jpg")
    (root / "readme.txt").write_text("holiday 2024\n")
    (root / "broken.jpg").write_bytes(b"not a JPEG")
    (root.parent / "positions.csv").write_text("path,lat,lon,heading\nscan.jpg,37.775,-122.421278,180\n")
    return root


def snapshot(folder: Path) -> dict[Path, tuple[bytes, int]]:
    return {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in folder.rglob("*") if path.is_file()}


def import_photos(photos: Path, out: Path, capsys, *flags: str) -> str:
    code, printed, err = run_main(["import-photos", str(photos), str(out), "--positions",
                                   str(photos.parent / "positions.csv"), "--no-progress", *flags], capsys)
    assert code == 0, err
    return printed


def test_exif_gps_reads_degrees_minutes_seconds_with_their_hemispheres(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[GPS_IFD] = {1: "S", 2: (33.0, 51.0, 36.0), 3: "E", 4: (151.0, 12.0, 54.0), 16: "M", 17: 370.0}
    Image.new("RGB", (8, 8)).save(tmp_path / "sydney.jpg", exif=exif)
    with Image.open(tmp_path / "sydney.jpg") as image:
        position, why = gps_position(image)
    assert (position.lat, position.lon, position.heading, why) == \
        (pytest.approx(-33.86, abs=1e-12), pytest.approx(151.215, abs=1e-12), 10.0, "")  # 370 is 10 degrees
    exif[GPS_IFD] = {1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)}
    Image.new("RGB", (8, 8)).save(tmp_path / "no_fix.jpg", exif=exif)
    with Image.open(tmp_path / "no_fix.jpg") as image:
        assert gps_position(image) == (None, "EXIF GPS position 0, 0 (written by cameras without a fix)")


def test_positions_csv_takes_a_header_and_names_the_line_of_a_bad_row(tmp_path: Path) -> None:
    table = tmp_path / "positions.csv"
    table.write_text("path,lat,lon,heading\na/one.jpg,45.5,9.25,\ntwo.jpg,-10,20,359.5\n")
    assert read_positions_csv(table, tmp_path / "photos") == {
        tmp_path / "photos" / "a" / "one.jpg": Position(45.5, 9.25, None),
        tmp_path / "photos" / "two.jpg": Position(-10.0, 20.0, 359.5)}
    table.write_text("one.jpg,45.5,9.25\ntwo.jpg,95,20\n")
    with pytest.raises(ConfigError) as error:
        read_positions_csv(table, tmp_path)
    assert str(error.value) == f"{table}, line 2: latitude '95' is outside [-90, 90] degrees"


def test_queries_are_drawn_by_the_seed_alone() -> None:
    assert draw_queries(9, 0.25, seed=0) == draw_queries(9, 0.25, seed=0)
    assert len(draw_queries(9, 0.25, seed=0)) == 2 and len(draw_queries(9, 0.01, seed=3)) == 1
    assert len(draw_queries(3, 0.99, seed=0)) == 2  # the database keeps one photo
    assert draw_queries(9, 0.25, seed=0) != draw_queries(9, 0.25, seed=1)


def test_photos_become_a_test_set_with_the_unplaced_and_skipped_listed(photos: Path, tmp_path: Path,
                                                                       capsys) -> None:
    before = snapshot(photos)
    out = tmp_path / "mine"
    printed = import_photos(photos, out, capsys, "--queries-fraction", "0.25", "--seed", "2")
    database, queries = sorted(os.listdir(out / "database")), sorted(os.listdir(out / "queries"))
    assert (len(database), len(queries)) == (7, 2)
    assert HAND_CHECKED in database + queries
    notes = sorted(parse_name(name).note for name in database + queries)
    assert notes == ["IMG_0001", "IMG_0001~2", *(f"IMG_{index:04d}" for index in range(2, 8)), "scan"]
    assert [parse_name(name).note for name in queries] == ["IMG_0003", "IMG_0001~2"]  # drawn by seed 2
    scan = parse_name(next(name for name in database + queries if name.endswith("@scan@.jpg")))
    assert (scan.lat, scan.lon, scan.heading, scan.utm_zone_number, scan.utm_zone_letter) == \
        (37.775, -122.42128, 180.0, 10, "S")
    assert (out / "unplaced.txt").read_text() == \
        f"{photos / 'no_gps.jpg'}\tno GPS position in its EXIF, and no row in the positions CSV\n"
    skipped = (out / "skipped.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in skipped] == [str(photos / "broken.jpg"), str(photos / "readme.txt")]
    assert skipped[0].startswith(f"{photos / 'broken.jpg'}\tunreadable (cannot identify image file")
    assert skipped[1] == f"{photos / 'readme.txt'}\tnot a .jpg, .jpeg or .png image"
    assert printed.splitlines()[:3] == [f"imported 9 photo(s) into {out} (hard-linked): database: 7, queries: 2",
                                        f"1 file(s) without a position (all listed in {out / 'unplaced.txt'})",
                                        f"  {photos / 'no_gps.jpg'}: no GPS position in its EXIF, and no row in "
                                        "the positions CSV"]
    assert snapshot(photos) == before  # bytes and modification times
    hand_checked = next((out / folder / HAND_CHECKED) for folder in ("database", "queries")
                        if (out / folder / HAND_CHECKED).exists())
    assert hand_checked.stat().st_ino == (photos / "IMG_0001.jpg").stat().st_ino
    again = tmp_path / "again"
    import_photos(photos, again, capsys, "--queries-fraction", "0.25", "--seed", "2")
    assert sorted(os.listdir(again / "queries")) == queries  # the same seed draws the same queries


def test_eval_and_predict_accept_the_imported_photos(photos: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine"
    import_photos(photos, out, capsys, "--queries-fraction", "0.25", "--seed", "2")
    write_tiny_checkpoint(tmp_path / "run" / "best.pt")
    code, _, err = run_main(["eval", "--checkpoint", str(tmp_path / "run"), str(out), "--out",
                                   str(tmp_path / "eval"), *INFERENCE_FLAGS], capsys)
    assert code == 0, err
    (row,) = json.loads(next((tmp_path / "eval").glob("eval-*.json")).read_text())["results"]
    assert (row["database"], row["queries"], row["queries_without_positives"]) == (7, 2, 0)
    code, _, err = run_main(["predict", "--checkpoint", str(tmp_path / "run"), "--database",
                                   str(out / "database"), str(photos / "no_gps.jpg"), "--k", "3", "--out",
                                   str(tmp_path / "predict"), *INFERENCE_FLAGS], capsys)
    assert code == 0, err
    (prediction,) = json.loads((tmp_path / "predict" / "predictions.json").read_text())
    assert len(prediction["matches"]) == 3


def test_train_accepts_photos_imported_as_a_training_set(photos: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine"
    printed = import_photos(photos, out, capsys, "--as", "train", "--copy", "--queries-fraction", "0.25", "--seed", "2")
    assert printed.splitlines()[0] == f"imported 8 photo(s) into {out} (copied): train: 6, val/queries: 2, " \
                                      "val/database: 6"
    assert sorted(os.listdir(out / "val" / "database")) == sorted(os.listdir(out / "train"))
    assert (out / "unplaced.txt").read_text().splitlines()[1] == \
        f"{photos / 'IMG_0007.jpg'}\tno heading (training needs one: EXIF GPSImgDirection or the heading column of " \
        "--positions)"
    copied = next(folder / HAND_CHECKED for folder in (out / "train", out / "val" / "queries")
                  if (folder / HAND_CHECKED).exists())
    assert copied.read_bytes() == (photos / "IMG_0001.jpg").read_bytes()
    assert copied.stat().st_ino != (photos / "IMG_0001.jpg").stat().st_ino
    linked = sorted((out / "train").iterdir())[0]
    assert (out / "val" / "database" / linked.name).stat().st_ino == linked.stat().st_ino
    # every photo is one class at M = 10 m; N = L = 1 puts all of them in one group
    code, _, err = run_main(["train", str(out), "--run-dir", str(tmp_path / "run"), *ONE_STEP_FLAGS,
                                   "--N", "1", "--L", "1"], capsys)
    assert code == 0, err
    assert (tmp_path / "run" / "best.pt").is_file()


def test_training_needs_headings_and_a_query_folder_excludes_a_fraction(photos: Path, tmp_path: Path,
                                                                         capsys) -> None:
    out = tmp_path / "mine"
    import_photos(photos, out, capsys, "--as", "train", "--queries", str(photos / "copy"))
    assert sorted(os.listdir(out / "val" / "queries")) == [HAND_CHECKED.replace("IMG_0001@", "IMG_0001~2@")]
    code, _, err = run_main(["import-photos", str(photos), str(tmp_path / "other"), "--queries",
                                   str(photos / "copy"), "--queries-fraction", "0.5"], capsys)
    assert code == 2
    assert the_error(err) == f"error: option --queries/--queries-fraction={photos / 'copy'},0.5 is out of range: " \
                             "give one of them, not both"
    code, _, err = run_main(["import-photos", str(photos), str(out)], capsys)
    assert code == 2
    assert the_error(err) == f"error: {out}: already exists and is not an empty folder; photos are never written " \
                             "over, give a new output folder"


@pytest.mark.parametrize("copy", [False, True])
def test_a_photo_that_cannot_be_placed_is_a_clear_error(copy: bool, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A link refused for another reason than the file system (no permission) or a full disk while copying is
    one error naming the photo and the target, not a traceback; the source is left as it was."""
    import errno
    import shutil

    from cosplace_xs.data import photo_import
    from cosplace_xs.errors import RunFolderError

    source, target = write_image(tmp_path / "a.jpg"), tmp_path / "out" / "b.jpg"
    target.parent.mkdir()
    before = source.read_bytes()
    monkeypatch.setattr(photo_import.os, "link", _raising(errno.EACCES, "Permission denied"))
    monkeypatch.setattr(shutil, "copyfileobj", _raising(errno.ENOSPC, "No space left on device"))
    with pytest.raises(RunFolderError) as caught:
        photo_import.place_file(source, target, copy=copy)
    why = "No space left on device" if copy else "Permission denied"
    how = "copied" if copy else "linked"
    assert str(caught.value).startswith(f"{source} could not be {how} to {target} ({why}); the photos placed so far")
    assert source.read_bytes() == before and not target.exists()


def _raising(number: int, text: str):
    def fail(*args: object) -> None:
        raise OSError(number, text)

    return fail
