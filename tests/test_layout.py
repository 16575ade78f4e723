"""Dataset folders: image listing (sorted, any depth, links and special files), test sets and dataset roots."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from cosplace_xs.data.layout import (
    discover_dataset,
    find_test_set,
    find_test_sets,
    folders_as_test_set,
    list_images,
    require_train_dir,
    write_paths_file,
)
from cosplace_xs.errors import DatasetLayoutError


def _touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def test_images_at_any_depth_sorted_by_path(tmp_path: Path) -> None:
    _touch(tmp_path / "b.jpg", tmp_path / "a" / "z.JPG", tmp_path / "a.png", tmp_path / "a" / "b" / "c.jpeg",
           tmp_path / "A.jpg")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == [
        "A.jpg", "a.png", "a/b/c.jpeg", "a/z.JPG", "b.jpg"]  # plain string order of the paths ("." < "/")


def test_non_image_files_are_ignored_with_a_warning_naming_them(tmp_path: Path, caplog) -> None:
    _touch(tmp_path / "x.jpg", tmp_path / "notes.txt", tmp_path / "d" / "Thumbs.db")
    with caplog.at_level(logging.WARNING):
        assert list_images(tmp_path) == [tmp_path / "x.jpg"]
    assert "ignored 2 non-image files" in caplog.text
    assert "notes.txt" in caplog.text and "Thumbs.db" in caplog.text


def test_missing_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=f"{tmp_path / 'nowhere'}: folder of database images not found"):
        list_images(tmp_path / "nowhere", "database images")


def test_folder_without_images_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _touch(tmp_path / "only_text" / "readme.txt")
    with pytest.raises(DatasetLayoutError, match=f"{tmp_path / 'empty'}: holds no image"):
        list_images(tmp_path / "empty")
    with pytest.raises(DatasetLayoutError, match=f"{tmp_path / 'only_text'}: holds no image .* expected the queries"):
        list_images(tmp_path / "only_text", "queries")


def test_a_link_back_to_an_ancestor_is_refused_naming_the_link_and_its_target(tmp_path: Path) -> None:
    _touch(tmp_path / "a" / "x.jpg", tmp_path / "b" / "y.jpg")
    os.symlink(tmp_path, tmp_path / "a" / "loop")  # points back to an ancestor: its images would be read twice
    with pytest.raises(DatasetLayoutError) as refused:
        list_images(tmp_path)
    assert str(refused.value) == (
        f"{tmp_path}: 1 symbolic link(s) refused while reading the images:\n  {tmp_path / 'a' / 'loop'}: symbolic "
        f"link to the folder {tmp_path}, inside it, whose images are read anyway; only links to single files inside "
        f"{tmp_path} are followed: copy or move the images into the folder, or remove the link")


def test_a_linked_folder_outside_is_refused(tmp_path: Path) -> None:
    _touch(tmp_path / "elsewhere" / "x.jpg", tmp_path / "train" / "y.jpg")
    os.symlink(tmp_path / "elsewhere", tmp_path / "train" / "part")
    with pytest.raises(DatasetLayoutError, match=f"  {tmp_path / 'train' / 'part'}: symbolic link to the folder "
                                                 f"{tmp_path / 'elsewhere'}, outside it;"):
        list_images(tmp_path / "train")


def test_a_linked_file_is_listed_inside_the_folder_and_refused_outside(tmp_path: Path) -> None:
    _touch(tmp_path / "train" / "a" / "x.jpg", tmp_path / "test" / "q.jpg")
    os.symlink(tmp_path / "train" / "a" / "x.jpg", tmp_path / "train" / "y.jpg")
    assert list_images(tmp_path / "train") == [tmp_path / "train" / "a" / "x.jpg", tmp_path / "train" / "y.jpg"]
    os.symlink(tmp_path / "test" / "q.jpg", tmp_path / "train" / "q.jpg")
    with pytest.raises(DatasetLayoutError, match=f"  {tmp_path / 'train' / 'q.jpg'}: symbolic link to "
                                                 f"{tmp_path / 'test' / 'q.jpg'}, outside {tmp_path / 'train'} "):
        list_images(tmp_path / "train")


def test_a_fifo_named_as_an_image_is_skipped_with_a_warning_naming_it(tmp_path: Path, caplog) -> None:
    _touch(tmp_path / "x.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    with caplog.at_level(logging.WARNING):
        assert list_images(tmp_path) == [tmp_path / "x.jpg"]
    assert f"{tmp_path / 'pipe.jpg'}: a FIFO (named pipe), not an image file; skipped" in caplog.text


def test_find_test_set_from_the_set_folder_or_a_dataset_root(tmp_path: Path) -> None:
    (tmp_path / "sf_xs" / "test" / "database").mkdir(parents=True)
    (tmp_path / "sf_xs" / "test" / "queries").mkdir()
    direct = find_test_set(tmp_path / "sf_xs" / "test")
    assert direct.name == "sf_xs/test"
    assert direct.database_dir == tmp_path / "sf_xs" / "test" / "database"
    assert direct.queries_dir == tmp_path / "sf_xs" / "test" / "queries"
    from_root = find_test_set(tmp_path / "sf_xs")
    assert (from_root.name, from_root.database_dir) == ("sf_xs", direct.database_dir)


def test_sf_xl_queries_v1_is_found(tmp_path: Path) -> None:
    (tmp_path / "sf_xl" / "test" / "database").mkdir(parents=True)
    (tmp_path / "sf_xl" / "test" / "queries_v1").mkdir()
    assert find_test_set(tmp_path / "sf_xl" / "test").queries_dir.name == "queries_v1"


def test_not_a_test_set_says_which_folders_are_expected(tmp_path: Path) -> None:
    (tmp_path / "val" / "database").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match=f"expected the folders {tmp_path / 'val'}/database and .*/queries"):
        find_test_set(tmp_path / "val")
    with pytest.raises(DatasetLayoutError, match="test set folder not found"):
        find_test_set(tmp_path / "missing")


def test_discover_dataset_finds_train_val_and_test(tmp_path: Path, caplog) -> None:
    for folder in ("train", "val/database", "val/queries", "test/database"):
        (tmp_path / folder).mkdir(parents=True)
    with caplog.at_level(logging.WARNING):
        paths = discover_dataset(tmp_path)
    assert paths.train_dir == tmp_path / "train"
    assert paths.val is not None and paths.val.queries_dir == tmp_path / "val" / "queries"
    assert paths.test is None
    assert "test: present but without database/ and queries/" in caplog.text
    assert require_train_dir(paths) == tmp_path / "train"


def test_dataset_without_any_split_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=r"no train/, val/ or test/ folder"):
        discover_dataset(tmp_path)
    with pytest.raises(DatasetLayoutError, match="dataset folder not found"):
        discover_dataset(tmp_path / "missing")
    (tmp_path / "test" / "database").mkdir(parents=True)
    (tmp_path / "test" / "queries").mkdir()
    with pytest.raises(DatasetLayoutError, match=f"{tmp_path}: no train/ folder; training needs"):
        require_train_dir(discover_dataset(tmp_path))


def test_image_endings_as_the_official_glob_or_ours(tmp_path: Path) -> None:
    _touch(tmp_path / "a.jpg", tmp_path / "b.JPG", tmp_path / "c.png", tmp_path / "d.jpeg")
    names = [p.name for p in list_images(tmp_path)]
    assert names == ["a.jpg", "b.JPG", "c.png", "d.jpeg"]
    # official datasets/dataset_utils.py:43: glob(f"{folder}/**/*.jpg"), which on Linux skips .JPG
    assert [p.name for p in list_images(tmp_path, extensions=(".jpg",), case_sensitive=True)] == ["a.jpg"]
    assert [p.name for p in list_images(tmp_path, extensions=(".jpg",))] == ["a.jpg", "b.JPG"]


def test_only_other_endings_is_an_error_naming_the_endings(tmp_path: Path) -> None:
    _touch(tmp_path / "b.JPG")
    with pytest.raises(DatasetLayoutError) as caught:
        list_images(tmp_path, "training images", (".jpg",), case_sensitive=True)
    assert str(caught.value) == (f"{tmp_path}: holds no image (.jpg, case-sensitive); expected the training images "
                                 "of the dataset")


def test_the_default_endings_are_the_options_default() -> None:
    from cosplace_xs.config import IMAGE_EXTENSIONS, TrainConfig
    from cosplace_xs.data import names

    assert IMAGE_EXTENSIONS == names.IMAGE_EXTENSIONS == TrainConfig().image_extensions


def test_the_queries_folder_option_picks_queries_v1_over_queries_where_there_is_one(tmp_path: Path) -> None:
    for name in ("database", "queries", "queries_v1"):
        (tmp_path / "sf" / name).mkdir(parents=True)
    for name in ("database", "queries"):
        (tmp_path / "tokyo" / name).mkdir(parents=True)
    assert find_test_set(tmp_path / "sf").queries_dir == tmp_path / "sf" / "queries"
    assert find_test_set(tmp_path / "sf", queries_folder="queries_v1").queries_dir == tmp_path / "sf" / "queries_v1"
    # official train.py:61 reads queries_v1 of SF-XL's test set; a set with only queries/ is still read
    assert find_test_set(tmp_path / "tokyo", queries_folder="queries_v1").queries_dir == tmp_path / "tokyo" / "queries"


def test_the_downloaders_layout_is_found_from_its_root_or_its_split(tmp_path: Path) -> None:
    split = tmp_path / "datasets" / "pitts30k" / "images" / "test"
    for name in ("database", "queries"):
        (split / name).mkdir(parents=True)
    from_root = find_test_set(tmp_path / "datasets" / "pitts30k")
    assert (from_root.name, from_root.database_dir, from_root.queries_dir) == (
        "pitts30k", split / "database", split / "queries")
    assert find_test_set(split).name == "pitts30k/test"


def test_two_folders_make_a_test_set_named_by_their_parent(tmp_path: Path) -> None:
    for name in ("db", "q"):
        (tmp_path / "mine" / name).mkdir(parents=True)
    paths = folders_as_test_set(tmp_path / "mine" / "db", tmp_path / "mine" / "q")
    assert (paths.name, paths.database_dir, paths.queries_dir) == ("mine", tmp_path / "mine" / "db",
                                                                   tmp_path / "mine" / "q")
    with pytest.raises(DatasetLayoutError) as error:
        folders_as_test_set(tmp_path / "mine" / "db", tmp_path / "missing")
    assert str(error.value) == f"{tmp_path / 'missing'}: folder of query images not found (--queries)"


def test_every_test_set_under_a_root_is_found_in_either_layout(tmp_path: Path) -> None:
    for folder in ("sf_xs/val", "sf_xs/test", "datasets/tokyo_xs/images/test", "sf_xl/test"):
        (tmp_path / folder / "database" / "deep" / "database").mkdir(parents=True)  # not entered: a set folder
    (tmp_path / "sf_xs" / "val" / "queries").mkdir()
    (tmp_path / "sf_xs" / "test" / "queries").mkdir()
    (tmp_path / "datasets" / "tokyo_xs" / "images" / "test" / "queries").mkdir()
    (tmp_path / "sf_xl" / "test" / "queries_v2").mkdir()
    (tmp_path / "sf_xs" / "train").mkdir()
    found = find_test_sets(tmp_path)
    assert [(paths.name, paths.queries_dir.name) for paths in found] == [
        ("datasets/tokyo_xs/images/test", "queries"), ("sf_xs/test", "queries"), ("sf_xs/val", "queries")]
    assert [(paths.name, paths.queries_dir.name) for paths in find_test_sets(tmp_path, "queries_v2")] == [
        ("datasets/tokyo_xs/images/test", "queries"), ("sf_xl/test", "queries_v2"), ("sf_xs/test", "queries"),
        ("sf_xs/val", "queries")]
    with pytest.raises(DatasetLayoutError) as error:
        find_test_sets(tmp_path / "sf_xs" / "train")
    assert str(error.value) == (f"{tmp_path / 'sf_xs' / 'train'}: no test set found under it (a folder holding "
                                "database/ and queries/, as DIR/test/ or datasets/NAME/images/test/)")


def test_a_paths_file_beside_a_folder_is_read_instead_of_walking_it(tmp_path: Path, caplog) -> None:
    folder = tmp_path / "test" / "database"
    _touch(folder / "b" / "2.jpg", folder / "1.jpg", folder / "not_listed.jpg")
    (tmp_path / "test" / "database_images_paths.txt").write_text("b/2.jpg\n1.jpg\n")  # official: folder-relative
    with caplog.at_level(logging.INFO):
        assert list_images(folder) == [folder / "1.jpg", folder / "b" / "2.jpg"]
    assert f"{folder}: 2 images listed in {tmp_path / 'test' / 'database_images_paths.txt'}; the folder is not " \
           "walked" in caplog.text


def test_a_paths_file_relative_to_the_dataset_is_read_too(tmp_path: Path) -> None:
    folder = tmp_path / "test" / "database"
    _touch(folder / "1.jpg", folder / "b" / "2.jpg")
    (tmp_path / "test" / "database_images_paths.txt").write_text("database/1.jpg\r\ndatabase/b/2.jpg\r\n\n")
    assert list_images(folder) == [folder / "1.jpg", folder / "b" / "2.jpg"]


def test_missing_listed_images_are_an_error_naming_the_file_and_the_first_missing(tmp_path: Path) -> None:
    folder = tmp_path / "database"
    _touch(folder / "1.jpg")
    listing = tmp_path / "database_images_paths.txt"
    listing.write_text("".join(f"{name}.jpg\n" for name in ("1", "x2", "x3", "x4", "x5", "x6", "x7")))
    with pytest.raises(DatasetLayoutError) as error:
        list_images(folder, "database images")
    assert str(error.value) == (
        f"{listing}: 6 of the 7 database images it lists are missing from {folder}: x2.jpg, x3.jpg, x4.jpg, "
        "x5.jpg, x6.jpg, ...; write it again with `cosplace-xs check-dataset DIR --write-paths-files`, or delete "
        "it to walk the folder")


def test_a_listed_path_outside_the_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "database"
    _touch(folder / "1.jpg", tmp_path / "queries" / "2.jpg")
    listing = tmp_path / "database_images_paths.txt"
    listing.write_text("1.jpg\n../queries/2.jpg\n")
    with pytest.raises(DatasetLayoutError) as error:
        list_images(folder)
    assert str(error.value) == (f"{listing}: line 2, ../queries/2.jpg, lies outside {folder}; list only the "
                                "images inside the folder, relative to it")


def test_write_paths_file_lists_the_walk_relative_to_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "queries_v1"
    _touch(folder / "b" / "2.png", folder / "1.jpg", folder / "notes.txt")
    written = write_paths_file(folder)
    assert written == (tmp_path / "queries_v1_images_paths.txt", 2)
    assert written[0].read_text() == "1.jpg\nb/2.png\n"
    assert list_images(folder) == [folder / "1.jpg", folder / "b" / "2.png"]
