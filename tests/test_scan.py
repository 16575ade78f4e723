"""Dataset checking: every kind of bad file is reported with its path and problem; check-dataset's exit status."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from cosplace_xs.cli import check_dataset
from cosplace_xs.data import images
from cosplace_xs.data.scan import scan_folder, scan_images
from cosplace_xs.errors import DatasetLayoutError


def _check_dataset(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    check_dataset.add_parser(parser.add_subparsers())
    args = parser.parse_args(["check-dataset", "--no-progress", *argv])
    return args.run(args)


def _problems(entries: list[tuple[Path, str]]) -> dict[str, str]:
    return {path.name: problem for path, problem in entries}


@pytest.fixture
def clean(tmp_path: Path, make_image, image_name) -> Path:
    """A small dataset root with nothing wrong: train/ (headings), val/ and test/ (none needed)."""
    root = tmp_path / "ds"
    for i in range(3):
        make_image(root / "train" / "a" / image_name(10.0 * i, 0.0, 90.0), color=(20 * i, 0, 0))
    for split in ("val", "test"):
        make_image(root / split / "database" / image_name(0.0, 0.0))
        make_image(root / split / "queries" / image_name(1.0, 1.0))
    return root


def test_a_clean_dataset_has_no_problem(clean: Path, capsys) -> None:
    report = scan_folder(clean, progress=False)
    assert report.ok and report.scanned == 7 and report.num_warnings == 0
    assert report.bad_paths() == set()
    assert _check_dataset(str(clean)) == 0
    assert "checked 7 images: 0 errors, 0 warnings, 0 notes - no problem found" in capsys.readouterr().out


def test_every_kind_of_problem_is_reported_at_once(clean: Path, make_image, image_name, capsys) -> None:
    train = clean / "train" / "b"
    whole = make_image(train / image_name(50.0, 0.0, 0.0), size=64).read_bytes()
    (train / image_name(60.0, 0.0, 0.0)).write_bytes(whole[: len(whole) // 2])  # truncated
    (train / image_name(70.0, 0.0, 0.0)).write_bytes(b"")  # zero bytes
    make_image(train / image_name(80.0, 0.0, 0.0), image_format="PNG")  # PNG named .jpg: a note
    (train / "readme.txt").write_text("hello")  # not an image
    make_image(train / "IMG_0001.jpg")  # no UTM in the name
    make_image(train / "@551000.0@north@10@S@@@@@0@@@@@@.jpg")  # non-numeric coordinate
    make_image(train / "@551000.0@4182000.0@10@S@@@@@400@@@@@@.jpg")  # heading outside [0, 360]
    make_image(train / image_name(0.0, 0.0))  # a training image without heading
    make_image(train / image_name(10.0, 0.0, 90.0))  # same name as one in train/a/
    (train / "not_jpeg.jpg").write_text("GIF? no, text")  # also a bad name; both are reported
    os.symlink(clean / "train", train / "loop")  # a link back to train/: refused
    os.symlink(train / "gone.jpg", train / image_name(90.0, 0.0, 0.0))  # broken link
    (clean / "test" / "queries").rename(clean / "test" / "elsewhere")  # test/ without queries/

    report = scan_folder(clean, progress=False)
    assert not report.ok
    bad_names = _problems(report.bad_names)
    assert bad_names["IMG_0001.jpg"].startswith("not in the '@utm_east@utm_north@")
    assert bad_names["@551000.0@north@10@S@@@@@0@@@@@@.jpg"] == "field 'utm_north' is 'north', not a number"
    assert bad_names["@551000.0@4182000.0@10@S@@@@@400@@@@@@.jpg"] == \
        "field 'heading' is 400.0, outside [0, 360] degrees"
    assert bad_names[image_name(0.0, 0.0)] == "field 'heading' is empty; it must be a number"
    assert "not_jpeg.jpg" in bad_names
    undecodable = _problems(report.undecodable)
    assert undecodable[image_name(60.0, 0.0, 0.0)] == \
        "cannot be decoded as an image (Image is incomplete or truncated); re-download or remove it"
    assert undecodable[image_name(70.0, 0.0, 0.0)] == "empty file (0 bytes); re-download it or remove it"
    assert undecodable["not_jpeg.jpg"].startswith("cannot be decoded as an image")
    assert _problems(report.unreadable) == {
        image_name(90.0, 0.0, 0.0): f"broken symbolic link to {train / 'gone.jpg'}; fix or remove the link"}
    assert _problems(report.wrong_extensions) == {
        image_name(80.0, 0.0, 0.0): "a PNG file named .jpg; it decodes fine, but rename it"}
    assert _problems(report.non_images) == {"readme.txt": "not an image (.txt); ignored"}
    first = clean / "train" / "a" / image_name(10.0, 0.0, 90.0)
    assert report.duplicate_names == [(train / first.name, f"same file name, so the same metadata, as {first}")]
    assert report.refused_links == [(train / "loop", f"symbolic link to the folder {clean / 'train'}, inside it, whose "
                                     f"images are read anyway; only links to single files inside {clean} are "
                                     "followed: copy or move the images into the folder, or remove the link")]
    assert report.layout == [(clean / "test", "has database/ but no queries/ folder; a test set needs both")]
    assert report.bad_paths() == {train / name for name in (
        "IMG_0001.jpg", "@551000.0@north@10@S@@@@@0@@@@@@.jpg", "@551000.0@4182000.0@10@S@@@@@400@@@@@@.jpg",
        image_name(0.0, 0.0), "not_jpeg.jpg", image_name(60.0, 0.0, 0.0), image_name(70.0, 0.0, 0.0),
        image_name(90.0, 0.0, 0.0))}
    assert report.counts() == {"bad_names": 5, "unreadable": 1, "undecodable": 3, "damaged": 0, "too_large": 0,
                               "refused_links": 1, "layout": 1, "non_images": 1, "special_files": 0,
                               "duplicate_names": 1, "stale_paths_files": 0, "unlike_published": 0,
                               "wrong_extensions": 1, "as_published": 0}

    assert _check_dataset(str(clean), "--limit", "2") == 1
    out = capsys.readouterr().out
    assert out.startswith(f"checked {report.scanned} images: 11 errors, 2 warnings, 1 notes\n")
    assert "ERROR bad file name (5):" in out and "  ... and 3 more" in out
    assert f"  {train / image_name(70.0, 0.0, 0.0)}: empty file (0 bytes)" in out
    assert "NOTE extension does not match the format (1):" in out


def test_warnings_fail_only_with_strict(clean: Path) -> None:
    (clean / "train" / "notes.txt").write_text("")
    assert scan_folder(clean, progress=False).ok
    assert _check_dataset(str(clean)) == 0
    assert _check_dataset(str(clean), "--strict") == 1


def test_headings_are_required_only_under_train(clean: Path, image_name, make_image) -> None:
    make_image(clean / "val" / "queries" / image_name(5.0, 5.0))
    make_image(clean / "train" / "a" / image_name(5.0, 5.0))
    assert [p.parent.name for p, _ in scan_folder(clean, progress=False).bad_names] == ["a"]


def test_duplicates_are_looked_for_within_one_image_set(clean: Path, image_name, make_image) -> None:
    make_image(clean / "val" / "queries" / image_name(0.0, 0.0))  # also in val/database: expected, not reported
    make_image(clean / "val" / "queries" / "sub" / image_name(1.0, 1.0))  # twice in val/queries: reported
    duplicates = scan_folder(clean, progress=False).duplicate_names
    assert [p.relative_to(clean).as_posix() for p, _ in duplicates] == [f"val/queries/sub/{image_name(1.0, 1.0)}"]


def test_empty_set_folders_and_missing_folders(tmp_path: Path) -> None:
    (tmp_path / "ds" / "train").mkdir(parents=True)
    report = scan_folder(tmp_path / "ds", progress=False)
    assert report.layout == [(tmp_path / "ds" / "train", "holds no image (.jpg, .jpeg, .png)"),
                             (tmp_path / "ds", "holds no image (.jpg, .jpeg, .png) at any depth")]
    with pytest.raises(DatasetLayoutError, match="folder not found"):
        scan_folder(tmp_path / "missing")


def test_scan_images_takes_a_list_of_paths(tmp_path: Path, make_image, image_name) -> None:
    good = make_image(tmp_path / image_name(1.0, 2.0, 3.0))
    no_heading = make_image(tmp_path / image_name(1.0, 2.0))
    report = scan_images([good, no_heading], require_heading=True, progress=False, workers=2)
    assert report.scanned == 2 and report.bad_paths() == {no_heading}
    assert scan_images([good, no_heading], progress=False).ok


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_file_is_reported(tmp_path: Path, make_image, image_name) -> None:
    path = make_image(tmp_path / image_name(1.0, 2.0, 3.0))
    path.chmod(0)
    try:
        report = scan_images([path], progress=False)
    finally:
        path.chmod(0o644)
    assert report.unreadable == [(path, "permission denied; make it readable (chmod a+r) or remove it")]


def test_a_permission_error_is_reported_as_unreadable(tmp_path: Path, make_image, image_name, monkeypatch) -> None:
    """The same branch as above, reached under root too by making the file's opening fail."""
    path = make_image(tmp_path / image_name(1.0, 2.0, 3.0))

    def refuse(file, *args, **kwargs):
        if Path(file) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return open(file, *args, **kwargs)

    monkeypatch.setattr(images, "open", refuse, raising=False)  # the name `open` as the image reader sees it
    report = scan_images([path], progress=False)
    assert report.unreadable == [(path, "permission denied; make it readable (chmod a+r) or remove it")]
    assert report.bad_paths() == {path} and report.undecodable == []
