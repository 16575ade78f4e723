"""Out-of-range options are refused before the first batch, by an error that names the option and the values it
may take; nothing is trained or checkpointed, and the run folder can be used again once the option is fixed."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ONE_STEP_FLAGS, write_small_dataset

from cosplace_xs.cli import main
from cosplace_xs.training import run_files

# one epoch of one batch of 2 classes on the dataset below, validated
DIVISORS_OF_360 = "1, 2, 3, 4, 5, 6, 8, 9, 10, 12, 15, 18, 20, 24, 30, 36, 40, 45, 60, 72, 90, 120, 180, 360"


@pytest.fixture(autouse=True)
def _split_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """train/: 4 classes of 2 images (cells 50 m apart, heading 0, so one group of 4 classes); val/: database
    images at east 0, 50, 100 m and queries at 1 and 51 m, so the nearest query is 1 m from the database."""
    return write_small_dataset(tmp_path / "ds", train_folder="train")


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


# kind -> (flags, the error printed); each refused by the option schema before any file is read
BAD_VALUES: dict[str, tuple[tuple[str, ...], str]] = {
    "an image size that would exhaust memory": (
        ("--image-size", "100000"), "option --image-size=100000 is out of range: 16 to 4096 pixels"),
    "a device torch has but we do not run on": (
        ("--device", "mps"), "option --device=mps is out of range: auto, cpu, cuda or cuda:N"),
    "the meta device": (("--device", "meta"), "option --device=meta is out of range: auto, cpu, cuda or cuda:N"),
    "a negative momentum": (("--momentum", "-0.5"), "option --momentum=-0.5 is out of range: [0, 1]"),
    "a negative seed": (("--seed", "-1"), "option --seed=-1 is out of range: [0, 4294967295]"),
    "a seed beyond 32 bits": (("--seed", "99999999999"), "option --seed=99999999999 is out of range: [0, 4294967295]"),
    "an infinite weight decay": (("--weight-decay", "inf"), "option --weight-decay=inf must be a finite number"),
    "an infinite ASGD lambda": (("--asgd-lambda", "inf"), "option --asgd-lambda=inf must be a finite number"),
    "a word where a number goes": (("--lr", "fast"), "option --lr=fast is not a number, expected a number"),
}

# kind -> (the --config file's text, the error printed after "error: FILE: ")
BAD_CONFIG_FILES: dict[str, tuple[str | bytes, str]] = {
    "a word where an integer goes, after a YAML 1.1 exponent": (
        "optim: {lr: 1e-5}\ntrain: {batch_size: 'x'}\n",
        "option train.batch_size='x' is not a number, expected an integer"),
    "a float where an integer goes": ("train: {batch_size: 2.5}\n", "option train.batch_size=2.5 must be an integer"),
    "a list where a number goes": ("train: {epochs: [1, 2]}\n",
                                   "option train.epochs=1,2 is not a number, expected an integer"),
    "a string where a boolean goes": ("train: {validate: 'false'}\n",
                                      "option train.validate='false' must be true or false (unquoted in YAML)"),
    "a group that is not a mapping": ("optim: 3\n", "'optim' must be a mapping of options"),
    "an unknown key": ("optim: {learning_rate: 0.1}\n", "unknown option(s) ['learning_rate'] in 'optim'"),
    "a binary file": (bytes(range(256)) * 8, "not a valid YAML file of options"),
}


@pytest.mark.parametrize("kind", list(BAD_VALUES))
def test_a_value_of_the_wrong_type_or_beyond_sense_is_refused_by_the_schema(kind: str, dataset: Path, tmp_path: Path,
                                                                           capsys) -> None:
    flags, message = BAD_VALUES[kind]
    run_dir = tmp_path / "run"
    assert main(["train", str(dataset), "--run-dir", str(run_dir), *ONE_STEP_FLAGS, *flags]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip() == f"error: {message}", err
    assert not run_dir.exists(), "refused before any folder is made"


@pytest.mark.parametrize("kind", list(BAD_CONFIG_FILES))
def test_a_bad_config_file_names_the_file_and_the_key(kind: str, dataset: Path, tmp_path: Path, capsys) -> None:
    text, message = BAD_CONFIG_FILES[kind]
    config = tmp_path / "c.yaml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    run_dir = tmp_path / "run"
    assert main(["train", str(dataset), "--run-dir", str(run_dir), "--config", str(config), *ONE_STEP_FLAGS]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith(f"error: {config}: ") and message in err, err
    assert len(err.strip().splitlines()) == 1 and not run_dir.exists()


def test_a_config_file_goes_through_the_same_coercion_as_flags(dataset: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("optim: {lr: 1e-3}\ntrain: {batch_size: '2'}\n")  # PyYAML reads both as strings
    run_dir = tmp_path / "run"
    at = ONE_STEP_FLAGS.index("--batch-size")
    flags = ONE_STEP_FLAGS[:at] + ONE_STEP_FLAGS[at + 2:]
    assert main(["train", str(dataset), "--run-dir", str(run_dir), "--config", str(config), *flags]) == 0
    saved = (run_dir / run_files.CONFIG).read_text()
    assert "lr: 0.001" in saved and "batch_size: 2\n" in saved


@pytest.mark.parametrize("kind", list(OUT_OF_RANGE))
def test_an_out_of_range_option_is_an_error_naming_the_option_and_its_range(kind: str, dataset: Path,
                                                                            tmp_path: Path, capsys) -> None:
    flags, message = OUT_OF_RANGE[kind]
    run_dir = tmp_path / "run"
    assert main(["train", str(dataset), "--run-dir", str(run_dir), *ONE_STEP_FLAGS, *flags]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    error = err[err.index("error: "):]
    assert error.startswith(f"error: {message.format(root=dataset)}"), error
    assert not list(run_dir.glob("*.pt")) and not (run_dir / run_files.CONFIG).exists(), "nothing is trained"


def test_a_run_folder_refused_for_an_option_trains_once_the_option_is_fixed(dataset: Path, tmp_path: Path) -> None:
    """The check comes before anything that would make the folder look like a run (config.yaml, checkpoints)."""
    run_dir = tmp_path / "run"
    assert main(["train", str(dataset), "--run-dir", str(run_dir), *ONE_STEP_FLAGS, "--batch-size", "5"]) == 2
    assert main(["train", str(dataset), "--run-dir", str(run_dir), *ONE_STEP_FLAGS, "--batch-size", "4"]) == 0
    assert (run_dir / run_files.CONFIG).is_file()


def test_eval_on_a_test_set_whose_queries_all_lack_positives_names_the_threshold(dataset: Path, reference_run: Path,
                                                                                 capsys) -> None:
    assert main(["eval", str(dataset / "val"), "--checkpoint", str(reference_run), "--positive-dist-threshold",
                 "0.5", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "error: option --positive-dist-threshold=0.5 leaves all 2 queries of ds/val without a positive" in err
    assert "use --positive-dist-threshold >= 1 (metres)" in err and "or pass another test set" in err
