"""File names, coordinates, split advice and predict: a bad name is a bad name wherever it is met (train, eval,
check-dataset, predict), named with the field at fault and never a traceback; advice names the option that
helps; predict keeps going, and says so, where only lat/lon or the meaning of a match is lost."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import INFERENCE_FLAGS, TINY_RUN_FLAGS, run_main, the_error, write_index_image, write_tiny_checkpoint

from cosplace_xs import checkpoints as ckpt
from cosplace_xs.data.names import display_name
from cosplace_xs.training import run_files

HUGE = "1" + "0" * 200 + ".0"  # 1e200 m written out: float() takes it; centring on it swamps every other position
NOT_UTF8 = os.fsdecode(b"\xff@201.0@0.0@10@S@@@@@0@@@@@@.jpg")
NOT_UTF8_SHOWN = "\\xff@201.0@0.0@10@S@@@@@0@@@@@@.jpg: the file name is not valid UTF-8 (the bytes shown as \\xNN)"


@pytest.fixture(autouse=True)
def _split_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))


ONE_BATCH_FLAGS = (*TINY_RUN_FLAGS, "--batch-size", "2")  # --min-images-per-class as each case needs


def _name(east: float, north: float = 0.0, heading: float | None = None, zone: str = "10@S") -> str:
    return f"@{east}@{north}@{zone}@@@@@{'' if heading is None else heading}@@@@@@.jpg"


@pytest.fixture
def dataset(tmp_path: Path, make_image) -> Path:
    """train/a/: classes of 3, 2, 2 and 1 images (cells 50 m apart, heading 0: one group); val/: 3 database
    images and 2 queries."""
    root = tmp_path / "ds"
    for east, images in ((0.0, 3), (50.0, 2), (100.0, 2), (150.0, 1)):
        for offset in range(1, images + 1):
            make_image(root / "train" / "a" / _name(east + offset, 0.0, 0.0), color=(int(east), 60, 90))
    for east in (0.0, 50.0, 100.0):
        make_image(root / "val" / "database" / _name(east), color=(int(east), 90, 60))
    for east in (1.0, 51.0):
        make_image(root / "val" / "queries" / _name(east), color=(int(east), 90, 60))
    return root




# case -> (file name under train/bad/, extra train options, exit code, what stderr or bad_images.txt says)
BAD_TRAINING_NAMES = {
    "digit separator": ("@2_01.0@0.0@10@S@@@@@0@@@@@@.jpg", (), 2,
                        "field 'utm_east' is '2_01.0', not a plain decimal number"),
    "Arabic-Indic digits": ("@\u0662\u0660\u0661.0@0.0@10@S@@@@@0@@@@@@.jpg", (), 2,
                            "field 'utm_east' is '\u0662\u0660\u0661.0', not a plain decimal number"),
    "UTM zone 10.7": ("@201.0@0.0@10.7@S@@@@@0@@@@@@.jpg", (), 2,
                      "field 'utm_zone_number' is '10.7', not a UTM zone number (an integer from 1 to 60)"),
    "UTM band O": ("@201.0@0.0@10@O@@@@@0@@@@@@.jpg", (), 2,
                   "field 'utm_zone_letter' is 'O', not a UTM latitude band"),
    "latitude 91": ("@201.0@0.0@10@S@91.0@-122.4@@@0@@@@@@.jpg", (), 2,
                    "field 'lat' is '91.0', outside [-90, 90] degrees"),
    "UTM east 1e200": (f"@{HUGE}@0.0@10@S@@@@@0@@@@@@.jpg", (), 2,
                       f"field 'utm_east' is '{HUGE}', outside [-10000000, 10000000] metres"),
    "bytes that are not UTF-8": (NOT_UTF8, (), 2, NOT_UTF8_SHOWN),
    "bytes that are not UTF-8, skipped": (NOT_UTF8, ("--skip-bad-images",), 0, NOT_UTF8_SHOWN),
}


@pytest.mark.parametrize("case", BAD_TRAINING_NAMES)
def test_a_bad_training_file_name_is_refused_before_training_or_skipped_and_listed(
        case: str, dataset: Path, tmp_path: Path, make_image, capsys) -> None:
    name, options, expected_code, message = BAD_TRAINING_NAMES[case]
    bad = make_image(dataset / "train" / "bad" / name)
    run_dir = tmp_path / "run"
    code, _, err = run_main(["train", str(dataset), "--run-dir", str(run_dir), "--min-images-per-class", "1",
                         *ONE_BATCH_FLAGS, *options], capsys)
    assert code == expected_code, err
    if expected_code == 2:
        error = the_error(err)
        assert "1 of 9 training images" in error.splitlines()[0]
        assert display_name(name) in error and message in error
        assert not list(run_dir.glob("*.pt"))  # refused before training: nothing to lose
    else:
        assert message in (run_dir / run_files.BAD_IMAGES).read_text(encoding="utf-8")
        assert "skipping unusable images: 1 of 9 training images" in (run_dir / run_files.LOG).read_text()
        assert len(ckpt.read_checkpoint(run_dir / ckpt.LAST)["history"]) == 1  # its one epoch trained
    assert bad.is_file()  # the dataset is left as it was


# case -> (how the test set is spoilt, command, exit code, message)
BAD_TEST_SET_NAMES = {
    "eval: a query at UTM east 1e200": (f"queries/@{HUGE}@0.0@10@S@@@@@@@@@@@.jpg", "eval", 2,
                                        f"field 'utm_east' is '{HUGE}', outside [-10000000, 10000000] metres"),
    "check-dataset: a query at UTM east 1e200": (f"queries/@{HUGE}@0.0@10@S@@@@@@@@@@@.jpg", "check-dataset", 1,
                                                 f"field 'utm_east' is '{HUGE}', outside [-10000000, 10000000]"),
    "eval: a database name with a NaN": ("database/@nan@0.0@10@S@@@@@@@@@@@.jpg", "eval", 2,
                                         "field 'utm_east' is 'nan', not a plain decimal number"),
    "eval: a query name that is not UTF-8": (f"queries/{NOT_UTF8}", "eval", 2, NOT_UTF8_SHOWN),
    "check-dataset: a query name that is not UTF-8": (f"queries/{NOT_UTF8}", "check-dataset", 1, NOT_UTF8_SHOWN),
}


@pytest.mark.parametrize("case", BAD_TEST_SET_NAMES)
def test_a_bad_test_set_file_name_is_named_by_eval_and_check_dataset(case: str, dataset: Path, tmp_path: Path,
                                                                    make_image, capsys) -> None:
    relative, command, expected_code, message = BAD_TEST_SET_NAMES[case]
    test_set = dataset / "val"
    bad = make_image(test_set / relative)
    if command == "eval":
        write_tiny_checkpoint(tmp_path / "best.pt")
        argv = ["eval", "--checkpoint", str(tmp_path / "best.pt"), str(test_set), "--out", str(tmp_path / "out"),
                *INFERENCE_FLAGS]
    else:
        argv = ["check-dataset", str(test_set), "--no-progress"]
    code, out, err = run_main(argv, capsys)
    assert code == expected_code, err
    if command == "eval":
        error = the_error(err)
        what = "query images" if relative.startswith("queries") else "database images"
        count = len(list(bad.parent.iterdir()))
        assert error.startswith(f"error: 1 of {count} {what} in {bad.parent} have a bad file name")
        assert message in error
        assert not (tmp_path / "out").exists()
    else:
        assert "ERROR bad file name (1):" in out
        assert message in out
    assert bad.is_file()


# case -> (train arguments, exit code, message)
SPLIT_ADVICE = {
    "train: every class dropped": (
        ["train", "{dataset}", "--min-images-per-class", "4", *ONE_BATCH_FLAGS], 2,
        "error: option --min-images-per-class=4 drops every class of {dataset}/train: its 4 classes (M=10, alpha=30) "
        "have fewer images; the largest class has 3 images: --min-images-per-class 3 keeps 1 class, 2 keeps 3, "
        "1 keeps 4"),
    "split-info: every class dropped": (
        ["split-info", "{dataset}", "--min-images-per-class", "5", "--M", "10", "--cache-dir", "{dataset}/cache"], 2,
        "the largest class has 3 images: --min-images-per-class 3 keeps 1 class, 2 keeps 3, 1 keeps 4"),
    "train: fewer groups than asked": (
        ["train", "{dataset}", "--min-images-per-class", "1", *ONE_BATCH_FLAGS, "--groups-num", "2"], 2,
        "error: --groups-num=2 asks for 2 groups, but the split of {dataset}/train has 1 group (M=10, alpha=30, N=5, "
        "L=2: at most N*N*L = 50); use --groups-num <= 1, or change --N / --L"),
}


@pytest.mark.parametrize("case", SPLIT_ADVICE)
def test_split_advice_names_the_option_that_helps(case: str, dataset: Path, tmp_path: Path, capsys) -> None:
    argv, expected_code, message = SPLIT_ADVICE[case]
    argv = [arg.format(dataset=dataset) for arg in argv]
    if argv[0] == "train":
        argv += ["--run-dir", str(tmp_path / "run")]
    code, _, err = run_main(argv, capsys)
    assert code == expected_code
    error = the_error(err)
    assert message.format(dataset=dataset) in error
    assert not list((tmp_path / "run").glob("*.pt"))


def _street(root: Path, zone: str = "10@S", east0: float = 551_000.0) -> Path:
    """root/{database,queries}: five database images 30 m apart, one query 1 m from the first and with its pixels,
    so that the first is its best match (at descriptor distance 0)."""
    for index in range(5):
        write_index_image(root / "database" / _name(east0 + 30.0 * index, 4_182_000.0, zone=zone), index)
    write_index_image(root / "queries" / _name(east0 + 1.0, 4_182_000.0, zone=zone), 0)
    return root


def _outside_utm(tmp_path: Path) -> tuple[Path, list[Path]]:
    root = _street(tmp_path / "street", east0=0.0)  # local metres: UTM east 0-120, zone 10S has no lat/lon there
    return root / "database", [root / "queries"]


def _test_set_root(tmp_path: Path) -> tuple[Path, list[Path]]:
    root = _street(tmp_path / "street")
    return root, [root / "queries"]


def _copy_of_a_database_image(tmp_path: Path) -> tuple[Path, list[Path]]:
    root = _street(tmp_path / "street")
    first = sorted((root / "database").iterdir())[0]
    photo = tmp_path / "photos" / first.name
    photo.parent.mkdir()
    shutil.copyfile(first, photo)
    return root / "database", [photo]


def _zone_61(tmp_path: Path) -> tuple[Path, list[Path]]:
    root = _street(tmp_path / "street", zone="61@S")
    return root / "database", [root / "queries"]


# case -> (how database and photos are made, exit code, message, what predictions.json says of the first photo)
PREDICT_CASES: dict[str, tuple[Callable[[Path], tuple[Path, list[Path]]], int, str, dict]] = {
    "database outside UTM's range": (
        _outside_utm, 0, "lat/lon unknown for 1 photo, so no HTML map: the name of the best match gives no lat/lon, "
                         "nor a UTM zone and position that convert to one; predictions.json gives positions in UTM",
        {"utm": [0.0, 4182000.0], "latlon": None, "in_database": None}),
    "database given as the test-set root": (
        _test_set_root, 0, "warning: photo @551001.0@4182000.0@10@S@@@@@@@@@@@.jpg is itself in the database (as "
                           "{database}/queries/@551001.0@4182000.0@10@S@@@@@@@@@@@.jpg): its match at distance 0 "
                           "says nothing of the model",
        {"in_database": "{database}/queries/@551001.0@4182000.0@10@S@@@@@@@@@@@.jpg"}),
    "photo that is a copy of a database image": (
        _copy_of_a_database_image, 0, "warning: photo @551000.0@4182000.0@10@S@@@@@@@@@@@.jpg is itself in the "
                                      "database (as {database}/@551000.0@4182000.0@10@S@@@@@@@@@@@.jpg)",
        {"utm": [551000.0, 4182000.0], "error_m": 0.0,
         "in_database": "{database}/@551000.0@4182000.0@10@S@@@@@@@@@@@.jpg"}),
    "database in UTM zone 61": (
        _zone_61, 2, "field 'utm_zone_number' is '61', not a UTM zone number (an integer from 1 to 60)", {}),
}


@pytest.mark.parametrize("case", PREDICT_CASES)
def test_predict_keeps_going_and_says_what_it_cannot_know(case: str, tmp_path: Path, capsys) -> None:
    make, expected_code, message, expected = PREDICT_CASES[case]
    database, photos = make(tmp_path)
    write_tiny_checkpoint(tmp_path / "run" / "best.pt")
    out = tmp_path / "out"
    code, printed, err = run_main(["predict", "--checkpoint", str(tmp_path / "run"), "--database", str(database),
                               "--k", "1", "--map", "--image-size", "16", "--out", str(out), *INFERENCE_FLAGS,
                               *map(str, photos)], capsys)
    assert code == expected_code, err
    if expected_code == 2:
        assert message in the_error(err)
        assert not out.exists()
        return
    assert message.format(database=database) in printed
    first = json.loads((out / "predictions.json").read_text())[0]
    for key, value in expected.items():
        assert first[key] == (value.format(database=database) if isinstance(value, str) else value), key
    # the picture, and the map in metres, which needs no lat/lon; the HTML map only where lat/lon is known
    assert len(list(out.glob("*.png"))) == 2
    assert len(list(out.glob("*.html"))) == (0 if first.get("latlon", 0) is None else 1)
