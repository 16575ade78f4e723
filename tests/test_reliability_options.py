"""Out-of-range options are refused before the first batch, by an error that names the option and the values it
may take; nothing is trained or checkpointed, and the run folder can be used again once the option is fixed."""

from __future__ import annotations

from pathlib import Path

import pytest

from cosplace_xs.cli import main
from cosplace_xs.training import run_files

# one epoch of one batch of 2 classes on the dataset below, validated
TRAIN_FLAGS = ("--device", "cpu", "--no-pretrained", "--image-size", "32", "--batch-size", "2", "--epochs", "1",
               "--iterations-per-epoch", "1", "--checkpoint-every", "0", "--num-workers", "0",
               "--min-images-per-class", "1", "--groups-num", "1", "--fc-output-dim", "8", "--eval-batch-size", "8",
               "--eval-num-workers", "0", "--no-progress")
DIVISORS_OF_360 = "1, 2, 3, 4, 5, 6, 8, 9, 10, 12, 15, 18, 20, 24, 30, 36, 40, 45, 60, 72, 90, 120, 180, 360"


@pytest.fixture(autouse=True)
def _split_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def dataset(tmp_path: Path, make_image, image_name) -> Path:
    """train/: 4 classes of 2 images (cells 50 m apart, heading 0, so one group of 4 classes); val/: database
    images at east 0, 50, 100 m and queries at 1 and 51 m, so the nearest query is 1 m from the database."""
    root = tmp_path / "ds"
    for east in (0.0, 50.0, 100.0, 150.0):
        for offset in (1.0, 2.0):
            make_image(root / "train" / image_name(east + offset, 0.0, 0.0), color=(int(east), 60, 90))
    for east in (0.0, 50.0, 100.0):
        make_image(root / "val" / "database" / image_name(east, 0.0), color=(int(east), 90, 60))
    for east in (1.0, 51.0):
        make_image(root / "val" / "queries" / image_name(east, 0.0), color=(int(east), 90, 60))
    return root


# kind -> (flags, the whole error the command prints, up to the way out)
OUT_OF_RANGE: dict[str, tuple[tuple[str, ...], str]] = {
    "negative M": (("--M", "-1"), "option --M=-1 is out of range: cell side in metres, > 0"),
    "alpha that does not divide 360": (
        ("--alpha", "7"), f"option --alpha=7 is out of range: a divisor of 360 degrees ({DIVISORS_OF_360})"),
    "descriptor size 0": (("--fc-output-dim", "0"), "option --fc-output-dim=0 is out of range: >= 1"),
    "batch larger than the classes of a group": (
        ("--batch-size", "5"),
        "option --batch-size=5 is larger than the 4 classes of group 0 (group id (0, 0, 0)); a batch holds distinct "
        "classes, so use --batch-size <= 4"),
    "one image per step, its last feature map 1x1": (
        ("--batch-size", "1"),
        "option --batch-size=1 trains one image per step (per process), and at --image-size=32 the last feature map "
        "of resnet18 is 1x1: BatchNorm cannot normalise a single value per channel; use --batch-size >= 2, or a "
        "larger --image-size"),
    "more groups than the split holds": (
        ("--groups-num", "2"),
        "--groups-num=2 asks for 2 groups, but the split of {root}/train has 1 group (M=10, alpha=30, N=5, L=2: at "
        "most N*N*L = 50); use --groups-num <= 1"),
    "val queries that all lack positives": (
        ("--positive-dist-threshold", "0.5"),
        "option --positive-dist-threshold=0.5 leaves all 2 queries of ds/val without a positive (its nearest query "
        "and database image are 1.00 m apart), so Recall@N would be 0 whatever the model learns; use "
        "--positive-dist-threshold >= 1 (metres)"),
}


@pytest.mark.parametrize("kind", list(OUT_OF_RANGE))
def test_an_out_of_range_option_is_an_error_naming_the_option_and_its_range(kind: str, dataset: Path,
                                                                            tmp_path: Path, capsys) -> None:
    flags, message = OUT_OF_RANGE[kind]
    run_dir = tmp_path / "run"
    assert main(["train", str(dataset), "--run-dir", str(run_dir), *TRAIN_FLAGS, *flags]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    error = err[err.index("error: "):]
    assert error.startswith(f"error: {message.format(root=dataset)}"), error
    assert not list(run_dir.glob("*.pt")) and not (run_dir / run_files.CONFIG).exists(), "nothing is trained"


def test_a_run_folder_refused_for_an_option_trains_once_the_option_is_fixed(dataset: Path, tmp_path: Path) -> None:
    """The check comes before anything that would make the folder look like a run (config.yaml, checkpoints)."""
    run_dir = tmp_path / "run"
    assert main(["train", str(dataset), "--run-dir", str(run_dir), *TRAIN_FLAGS, "--batch-size", "5"]) == 2
    assert main(["train", str(dataset), "--run-dir", str(run_dir), *TRAIN_FLAGS, "--batch-size", "4"]) == 0
    assert (run_dir / run_files.CONFIG).is_file()


def test_eval_on_a_test_set_whose_queries_all_lack_positives_names_the_threshold(dataset: Path, reference_run: Path,
                                                                                 capsys) -> None:
    assert main(["eval", str(dataset / "val"), "--checkpoint", str(reference_run), "--positive-dist-threshold",
                 "0.5", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "error: option --positive-dist-threshold=0.5 leaves all 2 queries of ds/val without a positive" in err
    assert "use --positive-dist-threshold >= 1 (metres)" in err and "or pass another test set" in err
