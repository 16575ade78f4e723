"""Datasets at the edges of what training accepts: a batch as large as a whole group, a group of one class, and
a val set with nothing in it. Each either trains, saying what it does, or stops before the first batch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import TINY_RUN_FLAGS

from cosplace_xs import checkpoints as ckpt
from cosplace_xs.cli import main
from cosplace_xs.training import run_files

TRAIN_FLAGS = (*TINY_RUN_FLAGS, "--min-images-per-class", "1")  # the batch size as each case needs


@pytest.fixture(autouse=True)
def _split_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))


def _train_images(root: Path, classes: int, per_class: int, make_image, image_name) -> None:
    """`classes` cells 50 m apart along one street, heading 0: with M=10 and N=5 every cell falls in group
    (0, 0, 0), so the train set is one group of `classes` classes of `per_class` images each."""
    for index in range(classes):
        for offset in range(1, per_class + 1):
            make_image(root / "train" / image_name(50.0 * index + offset, 0.0, 0.0), color=(index * 5 % 256, 60, 90))


def _train(dataset: Path, run_dir: Path, *flags: str) -> int:
    return main(["train", str(dataset), "--run-dir", str(run_dir), *TRAIN_FLAGS, *flags])


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err[err.index("error: "):]


def test_a_batch_larger_than_a_200_image_group_is_refused_and_the_whole_group_fits_in_one_batch(
        tmp_path: Path, make_image, image_name, capsys) -> None:
    """200 images in 50 classes: the limit is the group's classes (50), not its images (200)."""
    dataset = tmp_path / "ds"
    _train_images(dataset, classes=50, per_class=4, make_image=make_image, image_name=image_name)
    run_dir = tmp_path / "run"

    assert _train(dataset, run_dir, "--no-validate", "--batch-size", "256") == 2
    assert _error(capsys).startswith(
        "error: option --batch-size=256 is larger than the 50 classes of group 0 (group id (0, 0, 0)); a batch holds "
        "distinct classes, so use --batch-size <= 50")
    assert not list(run_dir.glob("*.pt"))

    assert _train(dataset, run_dir, "--no-validate", "--batch-size", "50") == 0
    log = (run_dir / run_files.LOG).read_text()
    assert "(200 listed)" in log and "classes: 50 kept with 200 images" in log
    state = ckpt.read_checkpoint(run_dir / ckpt.LAST)
    assert (state["epoch"], state["iteration"]) == (1, 0)
    assert state["classifiers"][0]["weight"].shape == (50, 8)


def test_a_group_of_a_single_class_trains_batches_of_one_with_zero_loss_and_a_warning(
        tmp_path: Path, make_image, image_name, capsys) -> None:
    dataset = tmp_path / "ds"
    _train_images(dataset, classes=1, per_class=3, make_image=make_image, image_name=image_name)
    run_dir = tmp_path / "run"

    assert _train(dataset, run_dir, "--no-validate", "--batch-size", "2") == 2
    assert _error(capsys).startswith("error: option --batch-size=2 is larger than the 1 class of group 0 "
                                     "(group id (0, 0, 0)); a batch holds distinct classes, so use --batch-size <= 1")

    # at 64 pixels ResNet-18's last feature map is 2x2, so BatchNorm works on batches of one image
    assert _train(dataset, run_dir, "--no-validate", "--batch-size", "1", "--image-size", "64") == 0
    assert "groups with a single class: 0; CosFace's loss over one class is always 0, so their epochs teach the " \
           "model nothing" in (run_dir / run_files.LOG).read_text()
    history = ckpt.read_checkpoint(run_dir / ckpt.LAST)["history"]
    assert history[0]["loss"] == 0.0  # cross-entropy over one logit: log(e^x / e^x)


def _empty_folders(root: Path, make_image, image_name) -> None:
    (root / "val" / "database").mkdir(parents=True)
    (root / "val" / "queries").mkdir()


def _no_queries_folder(root: Path, make_image, image_name) -> None:
    make_image(root / "val" / "database" / image_name(1.0, 0.0))


# kind -> (how to make it, what the run log says)
EMPTY_VAL: dict[str, tuple[Callable[[Path, Callable, Callable], None], str]] = {
    "database and queries empty": (_empty_folders, "validation skipped: {root}/val/database: holds no image"),
    "no queries folder": (_no_queries_folder, "no validation: {root}/val/{{database,queries}} not found"),
}


@pytest.mark.parametrize("kind", list(EMPTY_VAL))
def test_an_empty_val_set_skips_validation_with_a_warning_and_training_goes_on(
        kind: str, tmp_path: Path, make_image, image_name) -> None:
    dataset = tmp_path / "ds"
    _train_images(dataset, classes=4, per_class=2, make_image=make_image, image_name=image_name)
    make, logged = EMPTY_VAL[kind]
    make(dataset, make_image, image_name)
    run_dir = tmp_path / "run"

    assert _train(dataset, run_dir, "--batch-size", "2") == 0
    log = (run_dir / run_files.LOG).read_text()
    assert f"WARNING cosplace_xs.training.setup: {logged.format(root=dataset)}" in log
    state = ckpt.read_checkpoint(run_dir / ckpt.LAST)
    assert state["epoch"] == 1 and state["best_r1"] is None
    assert not any(key.startswith("val_") for key in state["history"][0])
    assert ckpt.read_checkpoint(run_dir / ckpt.BEST)["epoch"] == 1, "without validation, best.pt is the last epoch"
