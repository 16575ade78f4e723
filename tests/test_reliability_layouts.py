"""Datasets as the ecosystem ships them: a wrong or stale `<folder>_images_paths.txt`, a truncated download of
a well-known test set and a datasets root without a test set are each named, with what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import INFERENCE_FLAGS, run_main, the_error, write_test_set, write_tiny_checkpoint

DATABASE = [(0.0, 0.0), (50.0, 0.0), (100.0, 0.0)]
QUERIES = [(1.0, 0.0), (51.0, 0.0)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "best.pt"
    write_tiny_checkpoint(path)
    return path


def _listed(tmp_path: Path, lines: str) -> tuple[Path, Path]:
    """A test set whose database list holds `lines`: (the test set, the list)."""
    test_set = write_test_set(tmp_path / "set", DATABASE, QUERIES)
    listing = test_set / "database_images_paths.txt"
    listing.write_text(lines)
    return test_set, listing


def _database_names(test_set: Path) -> list[str]:
    return sorted(path.name for path in (test_set / "database").iterdir())


def test_a_paths_file_listing_missing_images_stops_eval_naming_it_and_the_first_missing(
        tmp_path: Path, checkpoint: Path, capsys) -> None:
    test_set, listing = _listed(tmp_path, "gone_1.png\ngone_2.png\n")
    listing.write_text(listing.read_text() + "".join(f"{name}\n" for name in _database_names(test_set)))
    code, _, err = run_main(["eval", str(test_set), "--checkpoint", str(checkpoint), *INFERENCE_FLAGS], capsys)
    assert (code, the_error(err)) == (2, (
        f"error: {listing}: 2 of the 5 database images it lists are missing from {test_set / 'database'}: "
        "gone_1.png, gone_2.png; write it again with `cosplace-xs check-dataset DIR --write-paths-files`, or "
        "delete it to walk the folder"))


def test_a_paths_file_listing_a_path_outside_its_folder_is_refused(tmp_path: Path, checkpoint: Path,
                                                                    capsys) -> None:
    test_set, listing = _listed(tmp_path, "")
    query = sorted((test_set / "queries").iterdir())[0].name
    listing.write_text(f"../queries/{query}\n")
    code, _, err = run_main(["eval", str(test_set), "--checkpoint", str(checkpoint), *INFERENCE_FLAGS], capsys)
    assert (code, the_error(err)) == (2, (
        f"error: {listing}: line 1, ../queries/{query}, lies outside {test_set / 'database'}; list only the images "
        "inside the folder, relative to it"))


def test_check_dataset_names_a_paths_file_that_misses_images_and_writes_it_again(tmp_path: Path, capsys) -> None:
    test_set, listing = _listed(tmp_path, "")
    names = _database_names(test_set)
    listing.write_text(f"{names[0]}\n")
    code, out, _ = run_main(["check-dataset", str(test_set), "--workers", "1", "--no-progress"], capsys)
    assert code == 0
    assert (f"WARNING images list out of date (1):\n  {listing}: does not list 2 of the 3 images of "
            f"{test_set / 'database'} (e.g. {names[1]}), which evaluation then skips; write it again with "
            "--write-paths-files") in out
    code, out, _ = run_main(["check-dataset", str(test_set), "--workers", "1", "--no-progress",
                             "--write-paths-files"], capsys)
    assert out.splitlines()[-2:] == [f"wrote {listing} (3 images)",
                                     f"wrote {test_set / 'queries_images_paths.txt'} (2 images)"]
    assert listing.read_text() == "".join(f"{name}\n" for name in names)


def test_check_dataset_says_when_a_well_known_test_set_looks_truncated(tmp_path: Path, capsys) -> None:
    test_set = write_test_set(tmp_path / "datasets" / "tokyo_xs" / "images" / "test", DATABASE, QUERIES)
    code, out, _ = run_main(["check-dataset", str(tmp_path / "datasets"), "--workers", "1", "--no-progress"],
                            capsys)
    assert code == 0
    assert (f"WARNING counts unlike the published set (1):\n  {test_set}: Tokyo-XS test has 315 queries and "
            "12,771 database images as published, this copy 2 queries and 3 database images: the download looks "
            "truncated; download it again (or unpack it again) and check once more") in out


def test_eval_on_a_datasets_root_without_a_test_set_says_what_it_looked_for(tmp_path: Path, checkpoint: Path,
                                                                            capsys) -> None:
    (tmp_path / "datasets" / "pitts30k" / "images" / "train").mkdir(parents=True)
    code, _, err = run_main(["eval", "--datasets-root", str(tmp_path / "datasets"), "--checkpoint", str(checkpoint),
                             *INFERENCE_FLAGS], capsys)
    assert (code, the_error(err)) == (2, (
        f"error: {tmp_path / 'datasets'}: no test set found under it (a folder holding database/ and queries/, as "
        "DIR/test/ or datasets/NAME/images/test/)"))
