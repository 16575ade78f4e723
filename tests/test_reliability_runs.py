"""Run folders and resume: one process per run folder, what --resume may change, atomic run files, a finished
run, refused starts that leave nothing behind, unwritable folders."""

from __future__ import annotations

import builtins
import csv
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from cosplace_xs import checkpoints as ckpt
from cosplace_xs.cli import main
from cosplace_xs.config import RunConfig
from cosplace_xs.evaluation import model_loading
from cosplace_xs.training import loop, run_files, setup


@pytest.fixture(autouse=True)
def _own_split_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def run_copy(reference_run: Path, tmp_path: Path) -> Path:
    """A copy of the finished reference run (2 epochs, best R@1 from its validation)."""
    return Path(shutil.copytree(reference_run, tmp_path / "run"))


@pytest.fixture
def train_flags(tiny_train_args: tuple[str, ...]) -> tuple[str, ...]:
    """The options of the reference run, without `train DATASET`."""
    return tiny_train_args[2:]


def snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under `folder`: size, modification time and content."""
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns, path.read_bytes())
            for path in sorted(folder.rglob("*")) if path.is_file()}


def check_refused(code: int, capsys, expected_code: int, fragment: str) -> str:
    """The exit code, one `error: ` line holding `fragment` on stderr, and no traceback anywhere."""
    out, err = capsys.readouterr()
    assert code == expected_code, err
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert fragment in errors[0]
    return errors[0]


HOLDER = """
import sys
from pathlib import Path
from cosplace_xs.training.run_files import RunLock
RunLock(Path(sys.argv[1])).acquire()
print("held", flush=True)
sys.stdin.read()
"""


# -- 1. one training process per run folder -------------------------------------------------------------------

HELD: dict[str, Callable[..., list[object]]] = {
    "new run in a folder being claimed": lambda run, flags, dataset: ["train", dataset, "--run-dir", run, *flags],
    "--resume of a running run": lambda run, flags, dataset: ["train", "--resume", run, "--epochs", "3"],
}


@pytest.mark.parametrize("case", HELD)
def test_a_run_folder_held_by_another_process_is_refused_and_left_untouched(
        case: str, run_copy: Path, train_flags: tuple[str, ...], tiny_city: Path, capsys) -> None:
    run_dir, argv = run_copy, HELD[case]
    if case.startswith("new run"):  # the first process has made the folder and holds it, config.yaml not yet written
        shutil.rmtree(run_dir)
        run_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        before = snapshot(run_dir)
        code = main([str(arg) for arg in argv(run_dir, train_flags, tiny_city)])
        check_refused(code, capsys, 2, f"{run_dir}: in use by another training process (PID {holder.pid})")
        assert snapshot(run_dir) == before
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


# -- 2 and 4. what a resume may change ------------------------------------------------------------------------

REFUSED_CHANGES = {
    "batch size": (["--batch-size", "2"], "cannot resume with other values of train.batch_size "
                                          "(train.batch_size: 4 in the run, 2 now)"),
    "image size": (["--image-size", "48"], "train.image_size: 32 in the run, 48 now"),
    "seed": (["--seed", "7"], "train.seed: 0 in the run, 7 now"),
    "CosFace margin": (["--margin", "0.3"], "loss.m: 0.4 in the run, 0.3 now"),
    "loss": (["--loss", "arcface"], "loss.loss: 'cosface' in the run, 'arcface' now"),
    "augmentation and descriptor size together": (
        ["--no-augmentation", "--fc-output-dim", "16"],
        "model.fc_output_dim: 8 in the run, 16 now"),
    "epochs below those trained": (["--epochs", "1"], "option --epochs=1 is below the 2 epochs the run has trained"),
    "a moved dataset that does not exist": (["{missing}"], "{missing}: dataset folder not found (given with --resume"),
}


@pytest.mark.parametrize("case", REFUSED_CHANGES)
def test_resume_refuses_an_option_that_would_change_the_run_naming_old_and_new(case: str, run_copy: Path,
                                                                               tmp_path: Path, capsys) -> None:
    flags, fragment = REFUSED_CHANGES[case]
    missing = str(tmp_path / "moved_away")
    flags = [flag.format(missing=missing) for flag in flags]
    before = snapshot(run_copy)
    code = main(["train", "--resume", str(run_copy), *flags, "--no-progress"])
    check_refused(code, capsys, 2, fragment.format(missing=missing))
    assert snapshot(run_copy) == before


def _read_history(run_dir: Path) -> list[dict]:
    return yaml.safe_load((run_dir / run_files.HISTORY).read_text())


ALLOWED_CHANGES = {
    # flags, the history entry's changes, and the learning rates the optimizers end with (model, classifiers)
    "longer and with a new learning rate": (
        ["--epochs", "3", "--lr", "0.002"],
        {"train.epochs": {"old": 2, "new": 3, "how": "allowed"}, "optim.lr": {"old": 0.001, "new": 0.002,
                                                                             "how": "applied"}},
        (0.002, 0.01)),
    "longer, new classifiers' rate, no validation": (
        ["--epochs", "3", "--classifiers-lr", "0.05", "--no-validate"],
        {"train.epochs": {"old": 2, "new": 3, "how": "allowed"}, "train.validate": {"old": True, "new": False,
                                                                                   "how": "allowed"},
         "optim.classifiers_lr": {"old": 0.01, "new": 0.05, "how": "applied"}},
        (0.001, 0.05)),
}


@pytest.mark.parametrize("case", ALLOWED_CHANGES)
def test_resume_applies_and_records_the_options_it_allows(case: str, run_copy: Path, capsys, caplog) -> None:
    flags, changes, (lr, classifiers_lr) = ALLOWED_CHANGES[case]
    assert main(["train", "--resume", str(run_copy), *flags, "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    said = "resumed with changed options: " + ", ".join(f"{key} {value['old']!r} -> {value['new']!r}"
                                                         for key, value in changes.items())
    assert said in caplog.text and said in (run_copy / run_files.LOG).read_text()  # terminal and train.log
    state = ckpt.read_checkpoint(run_copy / ckpt.LAST)
    assert (state["epoch"], state["iteration"]) == (3, 0)
    assert [group["lr"] for group in state["model_optimizer"]["param_groups"]] == [lr]
    assert {group["lr"] for o in state["classifier_optimizers"] for group in o["param_groups"]} == {classifiers_lr}
    history = _read_history(run_copy)
    assert [(entry["epoch"], entry["iteration"], entry["changed"]) for entry in history] == [(3, 0, changes)]
    rows = list(csv.DictReader((run_copy / run_files.METRICS).open()))
    assert [(float(row["lr"]), float(row["classifiers_lr"])) for row in rows] == \
        [(0.001, 0.01), (0.001, 0.01), (lr, classifiers_lr)]  # the record says what the optimizers used
    config = RunConfig.load(run_copy / run_files.CONFIG)
    assert (config.train.epochs, config.optim.lr, config.optim.classifiers_lr) == (3, lr, classifiers_lr)


def test_a_moved_dataset_given_with_resume_is_used_logged_and_recorded(run_copy: Path, tiny_city: Path,
                                                                       tmp_path: Path, capsys, caplog) -> None:
    moved = Path(shutil.copytree(tiny_city, tmp_path / "moved_city"))
    assert main(["train", str(moved), "--resume", str(run_copy), "--epochs", "3", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    line = f"dataset moved: {tiny_city} -> {moved}"
    assert line in caplog.text and line in (run_copy / run_files.LOG).read_text()  # terminal and train.log
    assert RunConfig.load(run_copy / run_files.CONFIG).train.dataset == str(moved)
    assert _read_history(run_copy)[0]["changed"]["train.dataset"] == {"old": str(tiny_city), "new": str(moved),
                                                                      "how": "allowed"}


def test_a_run_started_with_a_relative_dataset_path_resumes_from_any_folder(tiny_city: Path, tmp_path: Path,
                                                                            train_flags: tuple[str, ...],
                                                                            monkeypatch, capsys) -> None:
    run_dir = tmp_path / "run"
    monkeypatch.chdir(tiny_city.parent)
    flags = [*train_flags[: train_flags.index("--epochs")], "--epochs", "1",
             *train_flags[train_flags.index("--epochs") + 2:]]
    assert main(["train", tiny_city.name, "--run-dir", str(run_dir), *flags]) == 0
    assert RunConfig.load(run_dir / run_files.CONFIG).train.dataset == str(tiny_city.resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["train", "--resume", str(run_dir), "--epochs", "2", "--no-progress"]) == 0
    assert "Traceback" not in "".join(capsys.readouterr())
    assert ckpt.read_checkpoint(run_dir / ckpt.LAST)["epoch"] == 2


# -- 3. run files replaced atomically -------------------------------------------------------------------------

class Killed(BaseException):
    """Stands for a kill -9 in the middle of a write (nothing after it runs in the command)."""


def _die_while_writing(monkeypatch, starts: str) -> None:
    """The first text written whose start is `starts` is written half, flushed, and the process 'dies'."""
    real_open, real_fdopen = io.open, os.fdopen

    class HalfWriter:
        def __init__(self, file) -> None:
            self._file = file

        def write(self, text):
            if isinstance(text, str) and text.startswith(starts):
                self._file.write(text[: len(text) // 2])
                self._file.flush()
                raise Killed
            return self._file.write(text)

        def __getattr__(self, name):
            return getattr(self._file, name)

        def __enter__(self):
            self._file.__enter__()
            return self

        def __exit__(self, *exc):
            return self._file.__exit__(*exc)

    def wrap(real):
        return lambda *args, **kwargs: HalfWriter(real(*args, **kwargs))

    monkeypatch.setattr(io, "open", wrap(real_open))
    monkeypatch.setattr(builtins, "open", wrap(real_open))
    monkeypatch.setattr(os, "fdopen", wrap(real_fdopen))


KILLED_WRITES = {
    # the file, and how its text starts
    "config.yaml rewritten at resume": (run_files.CONFIG, "train:\n"),
    "history.yaml written at resume": (run_files.HISTORY, "- resumed:"),
}


@pytest.mark.parametrize("case", KILLED_WRITES)
def test_a_kill_while_a_run_file_is_rewritten_leaves_the_old_file_and_resume_works(
        case: str, run_copy: Path, monkeypatch, capsys) -> None:
    name, starts = KILLED_WRITES[case]
    before = (run_copy / name).read_text() if (run_copy / name).exists() else None
    _die_while_writing(monkeypatch, starts)
    with pytest.raises(Killed):
        main(["train", "--resume", str(run_copy), "--epochs", "3", "--no-progress"])
    monkeypatch.undo()
    assert ((run_copy / name).read_text() if (run_copy / name).exists() else None) == before
    RunConfig.load(run_copy / run_files.CONFIG, complete=True)
    assert not [path.name for path in run_copy.iterdir() if path.name.endswith(".tmp")]
    capsys.readouterr()
    assert main(["train", "--resume", str(run_copy), "--epochs", "3", "--no-progress"]) == 0
    assert "Traceback" not in "".join(capsys.readouterr())
    assert ckpt.read_checkpoint(run_copy / ckpt.LAST)["epoch"] == 3


# -- 5. a finished run --------------------------------------------------------------------------------------

def test_resuming_a_finished_run_says_it_is_complete_and_touches_nothing(run_copy: Path, monkeypatch,
                                                                         capsys) -> None:
    best = ckpt.read_checkpoint(run_copy / ckpt.LAST)["best_r1"]
    before = snapshot(run_copy)
    monkeypatch.setattr(loop, "train", lambda *args, **kwargs: pytest.fail("a finished run was trained"))
    assert main(["train", "--resume", str(run_copy), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "error: " not in err
    assert (f"{run_copy}: the run is complete: all 2 epochs trained, best val R@1 {best:.1f}; checkpoints: "
            f"{run_copy / ckpt.BEST}, {run_copy / ckpt.LAST}. To train it longer, resume with --epochs N (N > 2)"
            ) in out
    assert snapshot(run_copy) == before


# -- 6. a start refused by its checks -----------------------------------------------------------------------

def _weights_offline(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # no cached ImageNet weights

    def offline(url, *args, **kwargs):
        raise OSError(f"<urlopen error [Errno -3] Temporary failure in name resolution> {url}")

    monkeypatch.setattr("torch.hub.download_url_to_file", offline)


REFUSED_STARTS = {
    # flags replacing the reference run's, a fault to set up, and the error's fragment
    "no class left (0 groups)": ({"--min-images-per-class": "1000"}, None, "--min-images-per-class"),
    "more groups than the split holds": ({"--groups-num": "500"}, None, "--groups-num=500 asks for 500 groups"),
    "batch larger than a group's classes": ({"--batch-size": "4096"}, None,
                                            "--batch-size=4096 is larger than the"),
    "ImageNet weights unavailable offline": ({"--no-pretrained": None}, _weights_offline,
                                             "the ImageNet weights of resnet18 could not be downloaded"),
}


def _with(flags: tuple[str, ...], changes: dict[str, str | None]) -> list[str]:
    """`flags` with the values of `changes` (a value None: the flag is dropped)."""
    result, items = [], list(flags)
    while items:
        flag = items.pop(0)
        value = items.pop(0) if items and not items[0].startswith("--") else None
        if flag in changes:
            value = changes[flag]
            if value is None:
                continue
        result += [flag] if value is None else [flag, value]
    result += [item for flag, value in changes.items() if flag not in flags and value is not None
               for item in (flag, value)]
    return result


@pytest.mark.parametrize("where", ["new folder under --runs-root", "--run-dir made beforehand"])
@pytest.mark.parametrize("case", REFUSED_STARTS)
def test_a_start_refused_by_its_checks_fails_before_the_scan_and_leaves_no_empty_run_folder(
        case: str, where: str, tiny_city: Path, train_flags: tuple[str, ...], tmp_path: Path, monkeypatch,
        capsys) -> None:
    changes, fault, fragment = REFUSED_STARTS[case]
    if fault is not None:
        fault(monkeypatch, tmp_path)
    monkeypatch.setattr(setup, "scan_images", lambda *args, **kwargs: pytest.fail("images scanned before the checks"))
    runs_root, run_dir = tmp_path / "runs", tmp_path / "mine"
    if where.startswith("new"):
        folder_flags = ["--runs-root", str(runs_root)]
    else:
        run_dir.mkdir()
        folder_flags = ["--run-dir", str(run_dir)]
    code = main(["train", str(tiny_city), *folder_flags, *_with(train_flags, changes)])
    error = check_refused(code, capsys, 2, fragment)
    if where.startswith("new"):
        assert not any(runs_root.iterdir())
    else:  # the user's folder stays, with the error in its log
        assert sorted(path.name for path in run_dir.iterdir()) == [run_files.LOCK, run_files.LOG]
        assert error.removeprefix("error: ").splitlines()[0] in (run_dir / run_files.LOG).read_text()


# -- 7. folders that cannot be written ------------------------------------------------------------------------

def _unwritable(folder: Path, monkeypatch) -> None:
    """Make `folder` unwritable to the checks: under root (as in CI) permissions stop no write, so `os.access`
    answers for it as the kernel would for others."""
    real_access, target = os.access, folder.absolute()

    def access(path, mode, *args, **kwargs):
        if Path(path).absolute() == target and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


UNWRITABLE = {
    # folder made unwritable, argv, the error's fragment
    "new run under --runs-root": ("runs", lambda tmp, run, data: ["train", data, "--runs-root", tmp / "runs"],
                                  "--runs-root {tmp}/runs: {tmp}/runs is not writable"),
    "new run in --run-dir": ("mine", lambda tmp, run, data: ["train", data, "--run-dir", tmp / "mine"],
                             "--run-dir {tmp}/mine: {tmp}/mine is not writable"),
    "--run-dir in an unwritable folder": ("parent", lambda tmp, run, data: ["train", data, "--run-dir",
                                                                            tmp / "parent" / "new"],
                                          "--run-dir {tmp}/parent/new: {tmp}/parent is not writable"),
    "--resume": ("run", lambda tmp, run, data: ["train", "--resume", run, "--epochs", "3"],
                 "--resume {tmp}/run: {tmp}/run is not writable"),
    "eval --out": ("out", lambda tmp, run, data: ["eval", data / "test", "--checkpoint", run, "--out", tmp / "out"],
                   "--out {tmp}/out: {tmp}/out is not writable"),
    "eval into the checkpoint's folder": ("run", lambda tmp, run, data: ["eval", data / "test", "--checkpoint", run],
                                          "--out (default: the checkpoint's folder) {tmp}/run: {tmp}/run is not "
                                          "writable"),
}


@pytest.mark.parametrize("case", UNWRITABLE)
def test_an_unwritable_folder_is_refused_before_any_work(case: str, run_copy: Path, tiny_city: Path,
                                                         tmp_path: Path, monkeypatch, capsys) -> None:
    name, argv, fragment = UNWRITABLE[case]
    for folder in ("runs", "mine", "parent", "out"):
        (tmp_path / folder).mkdir()
    _unwritable(tmp_path / name, monkeypatch)
    monkeypatch.setattr(loop, "train", lambda *args, **kwargs: pytest.fail("training started"))
    monkeypatch.setattr(model_loading, "read_trained_model",
                        lambda *args, **kwargs: pytest.fail("evaluation started"))
    before = snapshot(tmp_path / name)
    code = main([str(arg) for arg in argv(tmp_path, run_copy, tiny_city)] + ["--no-progress"])
    check_refused(code, capsys, 2, fragment.format(tmp=tmp_path))
    assert snapshot(tmp_path / name) == before
