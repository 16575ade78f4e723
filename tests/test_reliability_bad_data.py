"""Bad data never stops a run half-way: every kind of bad file is found before the first batch, then refused
with a list (default) or skipped and listed (`--skip-bad-images`); `check-dataset` reports them all at once."""

from __future__ import annotations

import builtins
import errno
import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import ONE_STEP_FLAGS, SMALL_TRAIN_IMAGES, write_small_dataset

from cosplace_xs import checkpoints as ckpt
from cosplace_xs.cli import main
from cosplace_xs.training import run_files

# one epoch of one batch of 2 classes, validated, on the small dataset below


@pytest.fixture(autouse=True)
def _split_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """train/a/: 4 classes (cells 50 m apart, heading 0: one group) of 2 images; val/: 3 database images, 2 queries."""
    return write_small_dataset(tmp_path / "ds")


def _unreadable(path: Path, monkeypatch) -> None:
    """Make `path` unreadable: by its permissions, or under root (whom permissions do not stop, as in CI) by making
    every open of it fail with EACCES, as the kernel does for others; `Path.open` and PIL both go through these."""
    if os.geteuid() != 0:
        path.chmod(0)
        return
    real_open = builtins.open

    def refuse(file, *args, **kwargs):
        if isinstance(file, str | os.PathLike) and Path(file) == path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(io, "open", refuse)


def _truncated(path: Path, make_image) -> None:
    data = make_image(path, size=64).read_bytes()
    path.write_bytes(data[: len(data) // 2])


# kind -> (file name under train/bad/, how to make it, the problem reported for it)
UNUSABLE: dict[str, tuple[str, Callable[..., None], str]] = {
    "truncated JPEG": ("@201.0@0.0@10@S@@@@@0@@@@@@.jpg", lambda p, make, mp: _truncated(p, make),
                       "cannot be decoded as an image (Image is incomplete or truncated)"),
    "zero-byte file": ("@202.0@0.0@10@S@@@@@0@@@@@@.jpg", lambda p, make, mp: p.write_bytes(b""),
                       "empty file (0 bytes)"),
    "missing field": ("@203.0@10@S@@@@@0@@@@@@.jpg", lambda p, make, mp: make(p),  # no north: fields shift
                      "field 'utm_zone_number' is 'S', not a number"),
    "non-numeric coordinate": ("@204.0@north@10@S@@@@@0@@@@@@.jpg", lambda p, make, mp: make(p),
                               "field 'utm_north' is 'north', not a number"),
    "heading outside 0-360": ("@205.0@0.0@10@S@@@@@400@@@@@@.jpg", lambda p, make, mp: make(p),
                              "field 'heading' is 400.0, outside [0, 360] degrees"),
    "unreadable file": ("@206.0@0.0@10@S@@@@@0@@@@@@.jpg", lambda p, make, mp: (make(p), _unreadable(p, mp)),
                        "permission denied"),
}


def _add_unusable(dataset: Path, kind: str, make_image, monkeypatch) -> Path:
    name, make, _ = UNUSABLE[kind]
    path = dataset / "train" / "bad" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    make(path, make_image, monkeypatch)
    return path


def _train(dataset: Path, run_dir: Path, *flags: str) -> int:
    return main(["train", str(dataset), "--run-dir", str(run_dir), *ONE_STEP_FLAGS, *flags])


def _error(capsys) -> str:
    """The error the command printed (after any progress bar on stderr); it must not be a traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err[err.index("error: "):]


@pytest.mark.parametrize("kind", list(UNUSABLE))
def test_an_unusable_training_image_is_refused_before_training_or_skipped_and_listed(
        kind: str, dataset: Path, tmp_path: Path, make_image, monkeypatch, capsys) -> None:
    bad = _add_unusable(dataset, kind, make_image, monkeypatch)
    problem = UNUSABLE[kind][2]

    refused = tmp_path / "refused"
    assert _train(dataset, refused) == 2
    error = _error(capsys)
    assert error.startswith(f"error: unusable images: 1 of {SMALL_TRAIN_IMAGES + 1} training images (listed in "
                            f"{refused / run_files.BAD_IMAGES}):")
    assert f"  {bad}: {problem}" in error and "--skip-bad-images" in error
    assert not list(refused.glob("*.pt")), "nothing is trained"
    assert f"{bad}: {problem}" in (refused / run_files.BAD_IMAGES).read_text()

    skipped = tmp_path / "skipped"
    assert _train(dataset, skipped, "--skip-bad-images") == 0
    log = (skipped / run_files.LOG).read_text()
    assert f"skipping unusable images: 1 of {SMALL_TRAIN_IMAGES + 1} training images (listed in " \
           f"{skipped / run_files.BAD_IMAGES})" in log
    assert f"({SMALL_TRAIN_IMAGES} listed)" in log  # the split was built without it
    assert f"{bad}: {problem}" in (skipped / run_files.BAD_IMAGES).read_text()
    assert ckpt.read_checkpoint(skipped / ckpt.LAST)["epoch"] == 1


def _png_named_jpg(dataset: Path, make_image) -> None:
    make_image(dataset / "train" / "bad" / "@210.0@0.0@10@S@@@@@0@@@@@@.jpg", image_format="PNG")


def _same_name_in_another_folder(dataset: Path, make_image) -> None:
    make_image(dataset / "train" / "bad" / next((dataset / "train" / "a").iterdir()).name)


# kind -> (how to make it, training images used, what the run log says about it)
HARMLESS: dict[str, tuple[Callable[[Path, Callable], None], int, str]] = {
    "PNG renamed .jpg": (_png_named_jpg, SMALL_TRAIN_IMAGES + 1,  # decoded from its bytes, used
                         "a PNG file named .jpg; it decodes fine, but rename it"),
    "non-image file": (lambda root, make: (root / "train" / "readme.txt").write_text("notes"), SMALL_TRAIN_IMAGES,
                       "ignored 1 non-image files (readme.txt)"),
    "same name in two sub-folders": (_same_name_in_another_folder, SMALL_TRAIN_IMAGES + 1,  # both used, same class
                                     "same file name, so the same metadata, as"),
}


@pytest.mark.parametrize("kind", list(HARMLESS))
def test_a_harmless_problem_does_not_stop_training_and_is_logged(kind: str, dataset: Path, tmp_path: Path,
                                                                 make_image) -> None:
    make, used, logged = HARMLESS[kind]
    make(dataset, make_image)
    run_dir = tmp_path / "run"
    assert _train(dataset, run_dir) == 0
    log = (run_dir / run_files.LOG).read_text()
    assert f"({used} listed)" in log
    assert logged in log
    assert not (run_dir / run_files.BAD_IMAGES).exists()
    assert ckpt.read_checkpoint(run_dir / ckpt.LAST)["epoch"] == 1


def test_a_broken_val_image_is_found_before_training(dataset: Path, tmp_path: Path, make_image, image_name,
                                                     capsys) -> None:
    """Validation runs after an epoch of training: a broken val image must not be met there for the first time."""
    bad = dataset / "val" / "queries" / image_name(51.0, 0.0)
    _truncated(bad, make_image)

    refused = tmp_path / "refused"
    assert _train(dataset, refused) == 2
    error = _error(capsys)
    assert error.startswith(f"error: unusable images: 1 of 2 val queries (listed in {refused / run_files.BAD_IMAGES})")
    assert f"  {bad}: cannot be decoded as an image" in error
    assert not list(refused.glob("*.pt"))

    skipped = tmp_path / "skipped"
    assert _train(dataset, skipped, "--skip-bad-images") == 0
    assert "skipping unusable images: 1 of 2 val queries" in (skipped / run_files.LOG).read_text()
    history = ckpt.read_checkpoint(skipped / ckpt.LAST)["history"]
    assert history[0]["val_R@1"] in (0.0, 100.0)  # validated on the one usable query


def test_every_problem_at_once(dataset: Path, tmp_path: Path, make_image, monkeypatch, capsys) -> None:
    """All nine kinds in one dataset: check-dataset lists each once; training refuses (or skips) all six
    unusable files in one go, not one per attempt."""
    unusable = {}
    for index, kind in enumerate(UNUSABLE):
        name, make, problem = UNUSABLE[kind]
        path = dataset / "train" / "bad" / f"k{index}" / name
        path.parent.mkdir(parents=True)
        make(path, make_image, monkeypatch)
        unusable[path] = problem
    for make, _, _ in HARMLESS.values():
        make(dataset, make_image)

    assert main(["check-dataset", str(dataset), "--no-progress", "--limit", "0"]) == 1
    report = capsys.readouterr().out
    assert report.startswith(f"checked {SMALL_TRAIN_IMAGES + 5 + 2 + len(unusable)} images: 6 errors, 2 warnings, "
                             "1 notes\n")
    for path, problem in unusable.items():
        assert report.count(f"  {path}: {problem}") == 1, path
    for title in ("ERROR bad file name (3)", "ERROR unreadable (1)", "ERROR cannot be decoded (2)",
                  "WARNING not an image (1)", "WARNING same file name in two folders (1)",
                  "NOTE extension does not match the format (1)"):
        assert title in report

    assert _train(dataset, tmp_path / "refused") == 2
    error = _error(capsys)
    assert error.startswith(f"error: unusable images: 6 of {SMALL_TRAIN_IMAGES + 2 + 6} training images")
    assert all(f"  {path}: {problem}" in error for path, problem in unusable.items())

    skipped = tmp_path / "skipped"
    assert _train(dataset, skipped, "--skip-bad-images") == 0
    listed = (skipped / run_files.BAD_IMAGES).read_text()
    assert all(f"  {path}: {problem}" in listed for path, problem in unusable.items())
    assert f"({SMALL_TRAIN_IMAGES + 2} listed)" in (skipped / run_files.LOG).read_text()
