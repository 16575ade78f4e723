"""How a model runs on images, option by option: the pixel limit is one option of every command that reads
images, every inference option of `eval` and `predict` is checked as the schema says (one `error: ` line naming
the flag, before the checkpoint is read), and `predict` names a photo path that is not a regular file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import INFERENCE_FLAGS as SHARED_INFERENCE_FLAGS
from helpers import ONE_STEP_FLAGS, run_main, the_error, write_small_dataset, write_tiny_checkpoint

from cosplace_xs import checkpoints as ckpt
from cosplace_xs.training import run_files

INFERENCE_FLAGS = (*SHARED_INFERENCE_FLAGS, "--image-size", "32")
LIMIT = "2000"  # pixels: every 32 x 32 image of the dataset (1024) passes, a 64 x 64 one (4096) does not


@pytest.fixture(autouse=True)
def _split_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))


def _name(east: float, heading: float | None = None) -> str:
    return f"@{east}@0.0@10@S@@@@@{'' if heading is None else heading}@@@@@@.jpg"


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """train/a/: 4 classes of 2 images (one group); val/ and test/: 3 database images and 2 queries each."""
    return write_small_dataset(tmp_path / "ds", test_sets=("val", "test"))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder holding a best.pt (ResNet-18, D = 32, trained at 32 px)."""
    write_tiny_checkpoint(tmp_path / "run" / ckpt.BEST)
    return tmp_path / "run"




# case -> (where the 64 x 64 image goes, argv (root, run, out, bad), exit code, fragment ({bad}: its path))
ABOVE = "{bad}: 64 x 64 pixels (0.0 megapixels), above the limit of 0.002 megapixels"
Argv = Callable[[Path, Path, Path, Path], list[str]]
PIXEL_LIMIT: dict[str, tuple[str, Argv, int, str]] = {
    "check-dataset lists it": (
        "train/b", lambda root, run, out, bad: ["check-dataset", str(root), "--no-progress", "--max-image-pixels",
                                                LIMIT], 1, "ERROR above the pixel limit (1):\n  " + ABOVE),
    "train refuses it before the first batch": (
        "train/b", lambda root, run, out, bad: ["train", str(root), "--run-dir", str(out), *ONE_STEP_FLAGS,
                                                "--max-image-pixels", LIMIT], 2,
        "error: unusable images: 1 of 9 training images"),
    "eval refuses it among the queries": (
        "test/queries", lambda root, run, out, bad: ["eval", "--checkpoint", str(run), str(root / "test"), "--out",
                                                     str(out), *INFERENCE_FLAGS, "--max-image-pixels", LIMIT], 2,
        "error: " + ABOVE),
    "predict refuses it": (
        "photos", lambda root, run, out, bad: ["predict", "--checkpoint", str(run), "--database",
                                               str(root / "test" / "database"), str(bad), "--out", str(out),
                                               *INFERENCE_FLAGS, "--max-image-pixels", LIMIT], 2, "error: " + ABOVE),
    "augment-preview refuses it": (
        "photos", lambda root, run, out, bad: ["augment-preview", str(bad), "--out", str(out / "preview.png"),
                                               "--samples", "2", "--image-size", "32", "--max-image-pixels", LIMIT],
        2, "error: " + ABOVE),
}


@pytest.mark.parametrize("case", list(PIXEL_LIMIT))
def test_the_pixel_limit_is_one_option_of_every_command_that_reads_images(case: str, dataset: Path, run_dir: Path,
                                                                          tmp_path: Path, make_image,
                                                                          capsys) -> None:
    where, argv, expected_code, fragment = PIXEL_LIMIT[case]
    bad = make_image(dataset / where / _name(25.0, 0.0), size=64)
    out = tmp_path / "out"
    before = (run_dir / ckpt.BEST).read_bytes()
    code, stdout, err = run_main(argv(dataset, run_dir, out, bad), capsys)
    assert code == expected_code, err
    assert fragment.format(bad=bad) in (stdout if expected_code == 1 else err)
    if expected_code == 2:  # one error, naming the image (on its own line when several may be listed)
        assert the_error(err) and bad.name in err[err.index("error: "):]
    if case.startswith("train"):
        assert f"{bad}: " + ABOVE.removeprefix("{bad}: ") in (out / run_files.BAD_IMAGES).read_text()
        assert not list(out.glob("*.pt"))
    assert (run_dir / ckpt.BEST).read_bytes() == before  # the checkpoint read is untouched
    assert not out.exists() or case.startswith("train") or not list(out.glob("eval-*.json"))


# case -> (command, flags, message of the one error line)
BAD_OPTIONS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "eval --batch-size 0": ("eval", ("--batch-size", "0"), "option --batch-size=0 is out of range: >= 1"),
    "predict --num-workers -1": ("predict", ("--num-workers", "-1"),
                                 "option --num-workers=-1 is out of range: >= 0 or auto"),
    "eval --image-size 8": ("eval", ("--image-size", "8"), "option --image-size=8 is out of range: 16 to 4096 pixels"),
    "predict --image-size and --native-size": (
        "predict", ("--image-size", "32", "--native-size"),
        "option --image-size/--native-size=32,True is out of range: give one of them, not both"),
    "eval --device gpu": ("eval", ("--device", "gpu"),
                          "option --device=gpu is out of range: auto, cpu, cuda or cuda:N"),
    "eval --precision fp16 on the CPU": ("eval", ("--precision", "fp16"),
                                         "option --precision=fp16 needs a CUDA device; on the CPU use bf16 or fp32"),
    "eval --positive-dist-threshold 0": ("eval", ("--positive-dist-threshold", "0"),
                                         "option --positive-dist-threshold=0 is out of range: > 0 metres"),
    "predict --positive-dist-threshold x": ("predict", ("--positive-dist-threshold", "x"),
                                            "option --positive-dist-threshold=x is not a number, expected a number"),
    "eval --recall-values 0": ("eval", ("--recall-values", "5", "0"),
                               "option --recall-values=5,0 is out of range: positive integers"),
    "eval --nlist 0": ("eval", ("--approximate", "ivf", "--nlist", "0"), "option --nlist=0 is out of range: >= 1"),
    "eval --pq-m 5": ("eval", ("--approximate", "ivfpq", "--pq-m", "5"),
                      "option --pq-m=5 must divide the descriptor size 32"),
    "predict --max-image-pixels 0": ("predict", ("--max-image-pixels", "0"),
                                     "option --max-image-pixels=0 is out of range: >= 1 pixel"),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_every_inference_option_is_checked_by_the_schema_and_named_by_its_flag(case: str, dataset: Path,
                                                                               run_dir: Path, tmp_path: Path,
                                                                               capsys) -> None:
    command, flags, message = BAD_OPTIONS[case]
    out = tmp_path / "out"
    common = ["--checkpoint", str(run_dir), "--out", str(out), "--device", "cpu", "--num-workers", "0",
              "--no-progress"]
    where = ([str(dataset / "test")] if command == "eval"
             else ["--database", str(dataset / "test" / "database"), str(dataset / "test" / "queries")])
    before = (run_dir / ckpt.BEST).read_bytes()
    code, _, err = run_main([command, *common, *where, *flags], capsys)
    assert (code, the_error(err)) == (2, f"error: {message}")
    assert (run_dir / ckpt.BEST).read_bytes() == before
    assert not list(out.glob("eval-*.json")) and not (out / "predictions.json").exists()


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


# case -> (how the photo path is made, message of the one error line ({bad}: the path))
NOT_A_PHOTO: dict[str, tuple[Callable[[Path], Path], str]] = {
    "a FIFO": (_fifo, "error: {bad}: a FIFO (named pipe), not a regular file; give a photo or a folder of photos"),
    "a missing file": (lambda path: path, "error: {bad}: no such photo file or folder"),
}


@pytest.mark.parametrize("case", list(NOT_A_PHOTO))
def test_predict_names_a_photo_path_that_is_not_a_regular_file(case: str, dataset: Path, run_dir: Path,
                                                               tmp_path: Path, capsys) -> None:
    make, message = NOT_A_PHOTO[case]
    bad = make(tmp_path / "photo.jpg")
    out = tmp_path / "out"
    code, _, err = run_main(["predict", "--checkpoint", str(run_dir), "--database", str(dataset / "test" / "database"),
                         str(bad), "--out", str(out), *INFERENCE_FLAGS], capsys)
    assert (code, the_error(err)) == (2, message.format(bad=bad))
    assert not out.exists()
