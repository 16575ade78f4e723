"""Images and files on disk: every command reads an image file the same way (8-bit RGB whatever its mode and
depth, the header checked before any pixel is decoded) and lists a folder the same way (special files skipped,
symbolic links out of the folder refused), so what `check-dataset` accepts trains, evaluates and predicts, and
what it refuses is refused everywhere by name, never with a traceback, never by waiting forever."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import INFERENCE_FLAGS as SHARED_INFERENCE_FLAGS
from helpers import ONE_STEP_FLAGS, SMALL_TRAIN_IMAGES, run_main, the_error, write_small_dataset, write_tiny_checkpoint
from image_files import write_forged_jpeg, write_jpeg_cut_and_closed, write_jpeg_with_extraneous_bytes, write_png16
from PIL import Image

from cosplace_xs import checkpoints as ckpt
from cosplace_xs.training import run_files

INFERENCE_FLAGS = (*SHARED_INFERENCE_FLAGS, "--image-size", "32")


@pytest.fixture(autouse=True)
def _split_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))


def _name(east: float, heading: float | None = None) -> str:
    return f"@{east}@0.0@10@S@@@@@{'' if heading is None else heading}@@@@@@.jpg"


TRAIN_IMAGE = "train/bad/" + _name(201.0, 0.0).removesuffix(".jpg")  # + extension; a class of its own
TEST_QUERY = "test/queries/" + _name(52.0).removesuffix(".jpg")


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """train/a/: 4 classes of 2 images (one group); val/ and test/: 3 database images and 2 queries each."""
    return write_small_dataset(tmp_path / "ds", test_sets=("val", "test"))




# How a command is called on the dataset: root, run folder (holding best.pt), output folder, the file at fault
Argv = Callable[[Path, Path, Path, Path], list[str]]
COMMANDS: dict[str, Argv] = {
    "check-dataset": lambda root, run, out, bad: ["check-dataset", str(root), "--no-progress"],
    "train": lambda root, run, out, bad: ["train", str(root), "--run-dir", str(out), *ONE_STEP_FLAGS],
    "train --skip-bad-images": lambda root, run, out, bad: ["train", str(root), "--run-dir", str(out), *ONE_STEP_FLAGS,
                                                            "--skip-bad-images"],
    "eval": lambda root, run, out, bad: ["eval", "--checkpoint", str(run), str(root / "test"), "--out", str(out),
                                         *INFERENCE_FLAGS],
    "eval --num-workers 1": lambda root, run, out, bad: ["eval", "--checkpoint", str(run), str(root / "test"),
                                                         "--out", str(out), *INFERENCE_FLAGS, "--num-workers", "1"],
    "predict": lambda root, run, out, bad: ["predict", "--checkpoint", str(run), "--database",
                                            str(root / "test" / "database"), str(bad), "--out", str(out),
                                            *INFERENCE_FLAGS],
    "augment-preview": lambda root, run, out, bad: ["augment-preview", str(bad), "--out", str(out / "preview.png"),
                                                    "--samples", "2", "--image-size", "32"],
}


def _command(case: str, root: Path, tmp_path: Path, bad: Path) -> tuple[list[str], Path]:
    run = tmp_path / "run"
    if case.split()[0] in ("eval", "predict") and not (run / ckpt.BEST).exists():
        write_tiny_checkpoint(run / ckpt.BEST)
    out = tmp_path / "out"
    return COMMANDS[case](root, run, out, bad), out


def _grey16(root: Path, where: str) -> Path:
    return write_png16(root / f"{where}.png", np.full((32, 32), 32768, dtype=np.uint16))


def _rgb16(root: Path, where: str) -> Path:
    samples = np.stack([np.full((32, 32), value, dtype=np.uint16) for value in (65535, 32768, 0)], axis=-1)
    return write_png16(root / f"{where}.png", samples)


def _exif_rotated(root: Path, where: str) -> Path:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = root / f"{where}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (48, 32), (40, 160, 80)).save(path, exif=exif)
    return path


# case -> (how the image is made, where, command, what the command prints)
ANY_MODE: dict[str, tuple[Callable[[Path, str], Path], str, str, str]] = {
    "16-bit grey PNG in train, check-dataset": (_grey16, TRAIN_IMAGE, "check-dataset", "0 errors, 0 warnings"),
    "16-bit grey PNG in train, train": (_grey16, TRAIN_IMAGE, "train", ""),
    "16-bit grey PNG in train, train --skip-bad-images": (_grey16, TRAIN_IMAGE, "train --skip-bad-images", ""),
    "16-bit RGB PNG in test/queries, eval": (_rgb16, TEST_QUERY, "eval", "R@1"),
    "16-bit RGB PNG, predict": (_rgb16, TEST_QUERY, "predict", _name(52.0).replace(".jpg", ".png")),
    "16-bit grey PNG, augment-preview": (_grey16, TEST_QUERY, "augment-preview", "saved"),
    "EXIF-rotated JPEG in train, train": (_exif_rotated, TRAIN_IMAGE, "train", ""),
}


@pytest.mark.parametrize("case", list(ANY_MODE))
def test_an_image_of_any_mode_and_depth_is_read_as_8_bit_rgb_by_every_command(case: str, dataset: Path,
                                                                               tmp_path: Path, capsys) -> None:
    make, where, command, printed = ANY_MODE[case]
    image = make(dataset, where)
    argv, out = _command(command, dataset, tmp_path, image)
    code, stdout, err = run_main(argv, capsys)
    assert code == 0, err
    assert "error: " not in err
    assert printed in stdout
    if command.startswith("train"):
        log = (out / run_files.LOG).read_text()
        assert f"({SMALL_TRAIN_IMAGES + 1} listed)" in log  # used, not skipped
        assert not (out / run_files.BAD_IMAGES).exists()
        assert ckpt.read_checkpoint(out / ckpt.LAST)["epoch"] == 1
    if command == "augment-preview":  # the original's tile: 32768 of 65535 is mid-grey, not white
        with Image.open(out / "preview.png") as preview:
            tiles = np.asarray(preview.convert("RGB"))
        assert (tiles == 128).all(axis=-1).sum() >= 32 * 32


# case -> (how the bad file is made, where, command, exit code, fragment of the message ({bad}: its path))
BOMB = "{bad}: 30000 x 30000 pixels (900.0 megapixels), above the limit of 40 megapixels"
BOMBS: dict[str, tuple[Callable[[Path], Path], str, int, str]] = {
    "check-dataset lists it": (lambda p: write_forged_jpeg(p, 30000, 30000), "check-dataset", 1,
                               "ERROR above the pixel limit (1):\n  " + BOMB),
    "train refuses it": (lambda p: write_forged_jpeg(p, 30000, 30000), "train", 2,
                         "error: unusable images: 1 of 9 training images"),
    "train --skip-bad-images skips it": (lambda p: write_forged_jpeg(p, 30000, 30000), "train --skip-bad-images",
                                         0, ""),
    "a 65500 x 65500 header, check-dataset": (lambda p: write_forged_jpeg(p, 65500, 65500), "check-dataset", 1,
                                              "65500 x 65500 pixels (4290.2 megapixels)"),
    "eval refuses a bomb among the queries": (lambda p: write_forged_jpeg(p, 30000, 30000), "eval", 2,
                                              "error: " + BOMB),
    "eval with a decoding worker refuses it": (lambda p: write_forged_jpeg(p, 30000, 30000), "eval --num-workers 1",
                                               2, "error: " + BOMB),
    "predict refuses it": (lambda p: write_forged_jpeg(p, 30000, 30000), "predict", 2, "error: " + BOMB),
    "augment-preview refuses it": (lambda p: write_forged_jpeg(p, 30000, 30000), "augment-preview", 2,
                                   "error: " + BOMB),
}


@pytest.mark.parametrize("case", list(BOMBS))
def test_a_decompression_bomb_is_refused_from_its_header_by_every_command(case: str, dataset: Path,
                                                                          tmp_path: Path, capsys) -> None:
    make, command, expected_code, fragment = BOMBS[case]
    where = TRAIN_IMAGE if command.startswith(("train", "check-dataset")) else TEST_QUERY
    bad = make(dataset / f"{where}.jpg")
    assert bad.stat().st_size < 1000
    argv, out = _command(command, dataset, tmp_path, bad)
    code, stdout, err = run_main(argv, capsys)
    assert code == expected_code, err
    text = stdout if command == "check-dataset" else err
    assert fragment.format(bad=bad) in text
    if expected_code == 2:
        the_error(err)
        assert bad.name in the_error(err)
    if command.startswith("train"):
        assert f"{bad}: " + BOMB.removeprefix("{bad}: ") in (out / run_files.BAD_IMAGES).read_text()
        assert list(out.glob("*.pt")) == ([out / ckpt.BEST, out / ckpt.LAST] if expected_code == 0 else [])


def test_check_dataset_takes_the_pixel_limit_as_an_option(dataset: Path, capsys) -> None:
    code, stdout, _ = run_main(["check-dataset", str(dataset), "--no-progress", "--max-image-pixels", "1000"], capsys)
    assert code == 1
    assert "ERROR above the pixel limit (18):" in stdout  # every 32 x 32 image: 1024 pixels
    assert "32 x 32 pixels (0.0 megapixels), above the limit of 0.001 megapixels" in stdout
    code, _, err = run_main(["check-dataset", str(dataset), "--max-image-pixels", "0"], capsys)
    assert (code, the_error(err)) == (2, "error: option --max-image-pixels=0 is out of range: >= 1 pixel")


DAMAGED: dict[str, tuple[Callable[[Path], Path], str, int, str]] = {
    "extraneous bytes, check-dataset": (write_jpeg_with_extraneous_bytes, "check-dataset", 1,
                                        "  {bad}: the decoder warns: Corrupt JPEG data: 2 extraneous bytes before "
                                        "marker 0xda; the file is damaged: re-download or remove it"),
    "extraneous bytes, train": (write_jpeg_with_extraneous_bytes, "train", 2,
                                "  {bad}: the decoder warns: Corrupt JPEG data: 2 extraneous bytes before marker "
                                "0xda"),
    "scan cut short then closed, check-dataset": (write_jpeg_cut_and_closed, "check-dataset", 1,
                                                  "  {bad}: the decoder warns: Corrupt JPEG data: premature end of "
                                                  "data segment"),
    "scan cut short then closed, train --skip-bad-images": (write_jpeg_cut_and_closed, "train --skip-bad-images", 0,
                                                            ""),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_jpeg_data_that_libjpeg_only_warns_about_is_a_bad_image_named(case: str, dataset: Path, tmp_path: Path,
                                                                       capsys) -> None:
    make, command, expected_code, fragment = DAMAGED[case]
    bad = make(dataset / f"{TRAIN_IMAGE}.jpg")
    argv, out = _command(command, dataset, tmp_path, bad)
    code, stdout, err = run_main(argv, capsys)
    assert code == expected_code, err
    assert fragment.format(bad=bad) in (stdout if command == "check-dataset" else err)
    if command == "check-dataset":
        assert "ERROR damaged image data (1):" in stdout
    if command.startswith("train"):
        assert f"{bad}: the decoder warns: Corrupt JPEG data" in (out / run_files.BAD_IMAGES).read_text()
        if expected_code == 2:
            assert the_error(err).startswith("error: unusable images: 1 of 9 training images")
        else:
            assert f"({SMALL_TRAIN_IMAGES} listed)" in (out / run_files.LOG).read_text()


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _socket(path: Path) -> Path:
    server = socket.socket(socket.AF_UNIX)
    here = Path.cwd()
    os.chdir(path.parent)  # a socket's path is limited to 107 bytes: bind by its name, from its folder
    try:
        server.bind(path.name)  # the file stays after the socket is closed
    finally:
        os.chdir(here)
        server.close()
    return path


# case -> (how the special file is made, command, exit code, what is printed ({bad}: its path))
SPECIAL: dict[str, tuple[Callable[[Path], Path], str, int, str]] = {
    "FIFO, check-dataset": (_fifo, "check-dataset", 0,
                            "WARNING not a regular file (1):\n  {bad}: a FIFO (named pipe), not an image file; "
                            "skipped"),
    "FIFO, train": (_fifo, "train", 0, "{bad}: a FIFO (named pipe), not an image file; skipped"),
    "socket, check-dataset": (_socket, "check-dataset", 0, "  {bad}: a socket, not an image file; skipped"),
    "FIFO given to augment-preview": (_fifo, "augment-preview", 2,
                              "error: {bad}: a FIFO (named pipe), not an image file; remove it or give the image "
                              "itself"),
}


@pytest.mark.parametrize("case", list(SPECIAL))
def test_a_fifo_or_socket_named_as_an_image_is_skipped_with_a_warning_never_waited_on(
        case: str, dataset: Path, tmp_path: Path, cosplace_cli) -> None:
    """In a child process with a time limit: before the fix, opening the FIFO waited forever for a writer."""
    make, command, expected_code, fragment = SPECIAL[case]
    bad = make(dataset / "train" / "a" / "@9.0@0.0@10@S@@@@@0@@@@@@.jpg")
    argv, out = _command(command, dataset, tmp_path, bad)
    done = cosplace_cli(*argv, timeout=300)
    assert done.returncode == expected_code, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert fragment.format(bad=bad) in (done.stdout if command == "check-dataset" else done.stderr)
    if command == "train":
        assert f"({SMALL_TRAIN_IMAGES} listed)" in (out / run_files.LOG).read_text()
        assert ckpt.read_checkpoint(out / ckpt.LAST)["epoch"] == 1
    if expected_code == 2:
        the_error(done.stderr)


def _link(dataset: Path, link: str, target: str) -> tuple[Path, Path]:
    path = dataset / link
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(dataset / target if target else dataset, path)
    return path, dataset / target if target else dataset


OUTSIDE = "symbolic link to the folder {target}, outside it; only links to single files inside {folder} are followed"
# case -> (link, its target ("": the dataset root), command, exit code, folder being read, fragment ({bad}, {target},
# {folder}))
LINKS: dict[str, tuple[str, str, str, int, str, str]] = {
    "train/ link to the dataset root, train": ("train/leak", "", "train", 2, "train", "  {bad}: " + OUTSIDE),
    "train/ link to the dataset root, check-dataset": ("train/leak", "", "check-dataset", 1, "",
                                                       "ERROR symbolic link refused (1):\n  {bad}: symbolic link to "
                                                       "the folder {target}, inside it, whose images are read anyway"),
    "train/ link back to train/ (a loop), train": ("train/a/loop", "train", "train", 2, "train",
                                                   "  {bad}: symbolic link to the folder {target}, inside it, whose "
                                                   "images are read anyway"),
    "train/ link to test/queries, train": ("train/leak", "test/queries", "train", 2, "train", "  {bad}: " + OUTSIDE),
    "train/ file link to a test query, train": ("train/a/" + _name(1.5, 0.0), "test/queries/" + _name(1.0), "train",
                                                2, "train", "  {bad}: symbolic link to {target}, outside {folder} (it "
                                                            "could leak another set's images into this one)"),
    "test/queries link to the database, eval": ("test/queries/more", "test/database", "eval", 2, "test/queries",
                                                "  {bad}: " + OUTSIDE),
}


@pytest.mark.parametrize("case", list(LINKS))
def test_a_symbolic_link_out_of_the_folder_being_read_is_refused_by_every_command(case: str, dataset: Path,
                                                                                  tmp_path: Path, capsys) -> None:
    link, target, command, expected_code, folder, fragment = LINKS[case]
    bad, target_path = _link(dataset, link, target)
    argv, out = _command(command, dataset, tmp_path, bad)
    code, stdout, err = run_main(argv, capsys)
    assert code == expected_code, err
    assert fragment.format(bad=bad, target=target_path, folder=dataset / folder) in (
        stdout if command == "check-dataset" else err)
    if expected_code == 2:
        assert the_error(err).startswith(f"error: {dataset / folder}: 1 symbolic link(s) refused while "
                                               "reading the ")
        assert not list(out.glob("*.pt")), "nothing is trained"


def test_a_link_to_a_single_file_inside_the_folder_is_followed(dataset: Path, tmp_path: Path, capsys) -> None:
    os.symlink(dataset / "train" / "a" / _name(1.0, 0.0), dataset / "train" / "a" / _name(3.0, 0.0))
    code, _, err = run_main(COMMANDS["train"](dataset, tmp_path / "run", tmp_path / "out", dataset), capsys)
    assert code == 0, err
    assert f"({SMALL_TRAIN_IMAGES + 1} listed)" in (tmp_path / "out" / run_files.LOG).read_text()


def test_check_dataset_passes_on_a_city_that_synth_just_wrote(tmp_path: Path, capsys) -> None:
    """synth also writes contact_sheet.png and city.json at the root: check-dataset reads only the image folders."""
    city = tmp_path / "city"
    code, stdout, err = run_main(["synth", str(city), "--preset", "tiny", "--workers", "1", "--no-progress"], capsys)
    assert code == 0, err
    assert (city / "contact_sheet.png").is_file() and (city / "city.json").is_file()
    code, stdout, err = run_main(["check-dataset", str(city), "--no-progress"], capsys)
    assert code == 0, stdout + err
    assert stdout.splitlines()[0].endswith("images: 0 errors, 0 warnings, 0 notes - no problem found")
