"""Ctrl-C (SIGINT) and SIGTERM during training: the run stops at the next safe point (after the step it is in),
writes last.pt atomically, leaves no temp file, says how to resume, and exits 130 / 143 without a traceback;
`--resume` then ends with exactly the weights of the run that was never interrupted.

The run is `tiny_train_args`: 2 epochs of 3 batches, files written in order last.pt (epoch 1 batch 2), best.pt
and last.pt (epoch 1 end), last.pt (epoch 2 batch 2), best.pt (if R@1 improved) and last.pt (end). A signal is
sent by the child process to itself at a chosen moment (FAULT_RUNNER in tests/conftest.py).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from cosplace_xs import checkpoints as ckpt

# case -> (fault, exit code, signal name, the (epoch, iteration) of last.pt, as the message counts them)
STOPS = {
    "Ctrl-C during a batch": ("sigint-in-step:4", 130, "SIGINT", (1, 1), (2, 1)),
    "SIGTERM during a batch": ("sigterm-in-step:4", 143, "SIGTERM", (1, 1), (2, 1)),
    "Ctrl-C during an epoch's last batch": ("sigint-in-step:3", 130, "SIGINT", (0, 3), (1, 3)),
    "Ctrl-C while a checkpoint is written": ("sigint-in-save:3", 130, "SIGINT", (1, 0), (2, 0)),
    "Ctrl-C twice while a checkpoint is written": ("sigint-twice-in-save:3", 130, "SIGINT", (1, 0), (2, 0)),
}


@pytest.mark.parametrize("case", list(STOPS))
def test_a_stop_signal_ends_training_at_a_safe_point_and_resume_reproduces_the_run(
        case: str, cosplace_cli, tiny_train_args, reference_run: Path, assert_same_weights, tmp_path: Path) -> None:
    fault, code, name, progress, said = STOPS[case]
    run_dir = tmp_path / "run"
    stopped = cosplace_cli(*tiny_train_args, "--run-dir", run_dir, fault=fault)

    assert stopped.returncode == code, stopped.stderr[-3000:]
    assert code == 128 + getattr(signal, name)
    output = stopped.stdout + stopped.stderr
    assert "Traceback" not in output and "error: " not in output, stopped.stderr[-3000:]
    message = (f"stopped by {name} at epoch {said[0]}, iteration {said[1]}; {run_dir / ckpt.LAST} holds every "
               f"finished step. Continue with: cosplace-xs train --resume {run_dir}")
    assert [line for line in stopped.stderr.splitlines() if "stopped by" in line] == \
        [line for line in stopped.stderr.splitlines() if line.endswith(message)] != [], stopped.stderr[-3000:]
    assert message in (run_dir / "train.log").read_text()
    state = ckpt.read_checkpoint(run_dir / ckpt.LAST)
    assert (state["epoch"], state["iteration"]) == progress
    for path in run_dir.glob("*.pt"):  # whatever is under a final name is complete
        ckpt.read_checkpoint(path)
    assert not [path.name for path in run_dir.iterdir() if path.name.endswith(".tmp")], "temp files left"

    resumed = cosplace_cli("train", "--resume", run_dir, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed {run_dir / ckpt.LAST} at epoch {progress[0] + 1}, iteration {progress[1]}" in resumed.stderr
    assert_same_weights(run_dir, reference_run)
