"""Shared fixtures: tiny JPEG/PNG files with given names, and the tiny synthetic city."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from helpers import image_file_name, write_image

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # the workers share the machine's cores: each runs torch on its share, not on all of them at once
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


@pytest.fixture
def make_image() -> Callable[..., Path]:
    return write_image


@pytest.fixture
def image_name() -> Callable[..., str]:
    return image_file_name


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """A folder `make` fills once per test session, shared by every pytest-xdist worker: the first to take the lock
    makes it, the others wait and reuse it. Tests read it; those that change it work on a copy."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, above each worker's own
    folder, done = root / name, root / f"{name}.done"
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `tiny` synthetic city (train/, val/, test/, tokyo_xs/test/), generated once per test session."""
    from cosplace_xs.synthetic.city import city_preset, generate_city

    return made_once(tmp_path_factory, "tiny_city0", lambda root: generate_city(root, city_preset("tiny"),
                                                                                progress=False))


# A child `cosplace-xs` process with one fault injected by patching the library from outside (no test hook in
# the library): $COSPLACE_XS_TEST_FAULT is `<fault>:<n>`, the fault striking at the n-th call it watches.
FAULT_RUNNER = '''
import errno
import io
import os
import signal
import sys
import time
from pathlib import Path

import cosplace_xs.evaluation.evaluate as evaluate
import cosplace_xs.checkpoints as checkpoint
import cosplace_xs.training.loop as loop
from cosplace_xs.cli import main


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def disk_full():
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def on_call(module, name, n, fault, watched=lambda *args, **kwargs: True):
    real, calls = getattr(module, name), [0]

    def wrapper(*args, **kwargs):
        if watched(*args, **kwargs):
            calls[0] += 1
            if calls[0] == n:
                return fault(real, *args, **kwargs)
        return real(*args, **kwargs)

    setattr(module, name, wrapper)


def half_written(then):
    def fault(real, obj, file, *args, **kwargs):
        buffer = io.BytesIO()
        real(obj, buffer, *args, **kwargs)
        file.write(buffer.getvalue()[: buffer.tell() // 2])
        file.flush()
        os.fsync(file.fileno())
        then()
    return fault


def scaled_loss(factor):
    return lambda real, *args, **kwargs: real(*args, **kwargs) * factor


def signalled(signum, times=1):
    """Send `signum` to this process `times` times (each handled before the next), then go on with the call."""
    def fault(real, *args, **kwargs):
        for _ in range(times):
            os.kill(os.getpid(), signum)
            time.sleep(0.05)  # the handler runs during the sleep
        return real(*args, **kwargs)
    return fault


kind, _, n = os.environ.get("COSPLACE_XS_TEST_FAULT", "").partition(":")
n = int(n or 0)
if kind == "kill-in-step":  # after the forward pass of the n-th batch, before its backward pass
    on_call(loop.F, "cross_entropy", n, lambda *args, **kwargs: die())
elif kind == "kill-in-save":  # with half of the n-th checkpoint file written
    on_call(checkpoint.torch, "save", n, half_written(die))
elif kind == "kill-at-rename":  # between last.pt -> previous.pt and temp -> last.pt, the n-th time
    on_call(os, "replace", n, lambda *args, **kwargs: die(),
            lambda src, dst: Path(dst).name == checkpoint.LAST and Path(src).name.startswith(".last.pt."))
elif kind == "kill-in-validation":  # at the n-th descriptor extraction (database, then queries, per validation)
    on_call(evaluate, "extract_descriptors", n, lambda *args, **kwargs: die())
elif kind == "disk-full-in-save":  # no space left after 1 MiB of the n-th checkpoint file, under torch.save
    class FillingDisk(io.FileIO):
        def write(self, data):
            if self.tell() + len(data) > 1 << 20:
                disk_full()
            return super().write(data)

    on_call(os, "fdopen", n, lambda real, fd, mode: io.BufferedWriter(FillingDisk(fd, mode)),
            lambda fd, *args, **kwargs: Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(
                tuple(f".{name}." for name in (checkpoint.LAST, checkpoint.BEST))))  # a checkpoint's temp file
elif kind in ("sigint-in-step", "sigterm-in-step"):  # during the forward pass of the n-th batch
    on_call(loop.F, "cross_entropy", n, signalled(getattr(signal, kind.partition("-")[0].upper())))
elif kind in ("sigint-in-save", "sigint-twice-in-save"):  # Ctrl-C (once or twice) inside the n-th torch.save
    on_call(checkpoint.torch, "save", n, signalled(signal.SIGINT, times=2 if "twice" in kind else 1))
elif kind in ("nan-loss", "inf-loss"):
    on_call(loop.F, "cross_entropy", n, scaled_loss(float(kind.removesuffix("-loss"))))
elif kind:
    raise SystemExit(f"unknown fault {kind!r}")
sys.exit(main(sys.argv[1:]))
'''

# Each `cosplace_cli` call is a real child process (killed with kill -9, signalled, its exit code read as any
# other), forked from a zygote: one Python per test worker that imports torch and the library once, then forks a
# child per call and reports its pid and exit status. A fresh interpreter would spend about 9 of a tiny run's 20
# seconds importing. The child runs FAULT_RUNNER as __main__ and exits as the interpreter would: threads joined,
# atexit handlers run, output flushed.
ZYGOTE = '''
import atexit
import json
import os
import sys
import threading
import traceback

import torch  # noqa: F401  (imported once, before any fork)

import cosplace_xs.checkpoints
import cosplace_xs.cli
import cosplace_xs.evaluation.evaluate
import cosplace_xs.training.loop  # noqa: F401

runner_path = sys.argv[1]
runner = compile(open(runner_path).read(), runner_path, "exec")


def exit_code(exit):
    if exit.code is None or isinstance(exit.code, int):
        return exit.code or 0
    print(exit.code, file=sys.stderr)
    return 1


def child(request):
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    os.environ.update(request["env"])
    sys.argv = [runner_path, *request["args"]]
    code = 0
    try:
        exec(runner, {"__name__": "__main__", "__file__": runner_path})
    except SystemExit as exit:
        code = exit_code(exit)
    except BaseException:
        traceback.print_exc()
        code = 1
    threading._shutdown()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        child(request)
    print(json.dumps({"pid": pid}), flush=True)
    print(json.dumps({"returncode": os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])}), flush=True)
'''


@pytest.fixture(scope="session")
def cosplace_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """Run `cosplace-xs ARGS` in a child process (one CPU thread, a split cache of its own for the session),
    with `fault="<fault>:<n>"` injected (see FAULT_RUNNER); returns the finished process, output captured."""
    folder = tmp_path_factory.mktemp("cli")
    runner, zygote_script = folder / "cosplace_xs_with_fault.py", folder / "zygote.py"
    runner.write_text(FAULT_RUNNER)
    zygote_script.write_text(ZYGOTE)
    env = {**os.environ, "COSPLACE_XS_CACHE": str(folder / "cache"), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    zygote = subprocess.Popen([sys.executable, str(zygote_script), str(runner)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, bufsize=1)
    calls = [0]

    def run(*args: object, fault: str = "", timeout: float = 600) -> subprocess.CompletedProcess[str]:
        calls[0] += 1
        stdout, stderr = folder / f"{calls[0]}.out", folder / f"{calls[0]}.err"
        request = {"args": list(map(str, args)), "env": {"COSPLACE_XS_TEST_FAULT": fault},
                   "stdout": str(stdout), "stderr": str(stderr)}
        assert zygote.stdin is not None and zygote.stdout is not None
        zygote.stdin.write(json.dumps(request) + "\n")
        pid = json.loads(zygote.stdout.readline())["pid"]
        if not select.select([zygote.stdout], [], [], timeout)[0]:
            os.kill(pid, signal.SIGKILL)
            zygote.stdout.readline()
            raise subprocess.TimeoutExpired(["cosplace-xs", *map(str, args)], timeout)
        returncode = json.loads(zygote.stdout.readline())["returncode"]
        return subprocess.CompletedProcess(["cosplace-xs", *map(str, args)], returncode, stdout.read_text(),
                                           stderr.read_text())

    yield run
    assert zygote.stdin is not None
    zygote.stdin.close()
    zygote.wait(timeout=60)


@pytest.fixture(scope="session")
def tiny_train_args(tiny_city: Path) -> tuple[str, ...]:
    """`train` arguments of a small CPU run on the tiny city: 2 epochs (groups 0, 1) of 3 batches of 4, a
    checkpoint every 2 batches and at each epoch end, validation after each epoch."""
    return ("train", str(tiny_city), "--device", "cpu", "--no-pretrained", "--image-size", "32", "--batch-size", "4",
            "--epochs", "2", "--iterations-per-epoch", "3", "--checkpoint-every", "2", "--num-workers", "0",
            "--min-images-per-class", "2", "--groups-num", "2", "--fc-output-dim", "8", "--lr", "0.001",
            "--eval-batch-size", "32", "--eval-num-workers", "0", "--no-progress")


@pytest.fixture(scope="session")
def reference_run(cosplace_cli: Callable[..., subprocess.CompletedProcess[str]], tiny_train_args: tuple[str, ...],
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder of `tiny_train_args` trained without interruption (once per session, shared)."""

    def make(folder: Path) -> None:
        folder.mkdir()
        done = cosplace_cli(*tiny_train_args, "--run-dir", folder / "run")
        assert done.returncode == 0, done.stderr

    return made_once(tmp_path_factory, "reference", make) / "run"


def trained_tensors(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The model's and every group classifier's weights in a checkpoint, by name."""
    from cosplace_xs.checkpoints import read_checkpoint

    state = read_checkpoint(checkpoint)
    tensors = {f"model.{key}": value for key, value in state["model"].items()}
    for index, classifier in enumerate(state["classifiers"]):
        tensors.update({f"classifier{index}.{key}": value for key, value in classifier.items()})
    return tensors


@pytest.fixture
def assert_same_weights() -> Callable[[Path, Path], None]:
    """Check that two run folders ended with exactly the same weights, history and progress."""

    def check(run_dir: Path, expected_dir: Path) -> None:
        from cosplace_xs.checkpoints import LAST, read_checkpoint

        got, expected = trained_tensors(run_dir / LAST), trained_tensors(expected_dir / LAST)
        assert got.keys() == expected.keys()
        different = [key for key in expected if not torch.equal(got[key], expected[key])]
        assert not different, f"{len(different)} tensors differ from the uninterrupted run, e.g. {different[:3]}"
        got_state, expected_state = read_checkpoint(run_dir / LAST), read_checkpoint(expected_dir / LAST)
        for key in ("epoch", "iteration", "best_r1"):
            assert got_state[key] == expected_state[key], key
        drop_timing = ("train_seconds", "images_per_s", "val_seconds")
        assert [{k: v for k, v in row.items() if k not in drop_timing} for row in got_state["history"]] == \
            [{k: v for k, v in row.items() if k not in drop_timing} for row in expected_state["history"]]

    return check
