"""kill -9 at chosen moments of a CPU training run: a loadable checkpoint is always left, and `--resume`
ends with exactly the weights of the uninterrupted run.

The run (`tiny_train_args`): 2 epochs of 3 batches, a checkpoint after batch 2 and at each epoch end, so the
files written in order are last.pt (epoch 1 batch 2), best.pt + last.pt (epoch 1 end, the old last.pt kept as
previous.pt), last.pt (epoch 2 batch 2), best.pt (if R@1 improved) + last.pt (end).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from cosplace_xs import checkpoints as ckpt

KILLED = -signal.SIGKILL  # the return code of a child process ended by kill -9

# fault -> (the checkpoint a resume starts from, its (epoch, iteration)); None: no checkpoint was written yet
MOMENTS = {
    "kill-in-step:1": None,  # during the very first batch
    "kill-in-step:3": (ckpt.LAST, (0, 2)),  # during batch 3, after the mid-epoch checkpoint
    "kill-in-save:3": (ckpt.LAST, (0, 2)),  # half of epoch 1's end-of-epoch last.pt written to its temp file
    "kill-at-rename:2": (ckpt.PREVIOUS, (0, 2)),  # last.pt already moved to previous.pt, the new one not in place
    "kill-in-validation:2": (ckpt.LAST, (0, 2)),  # epoch 1's validation, database extracted, queries not
    "kill-in-validation:4": (ckpt.LAST, (1, 2)),  # epoch 2's validation
}


@pytest.mark.parametrize("fault", list(MOMENTS))
def test_kill_leaves_a_loadable_checkpoint_and_resume_reproduces_the_run(
        fault: str, cosplace_cli, tiny_train_args, reference_run: Path, assert_same_weights, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    killed = cosplace_cli(*tiny_train_args, "--run-dir", run_dir, fault=fault)
    assert killed.returncode == KILLED, killed.stderr

    expected = MOMENTS[fault]
    if expected is None:
        assert not (run_dir / ckpt.LAST).exists() and not (run_dir / ckpt.PREVIOUS).exists()
    else:
        name, progress = expected
        state = ckpt.read_checkpoint(run_dir / name)
        assert (state["epoch"], state["iteration"]) == progress
    for path in run_dir.glob("*.pt"):  # whatever is there under a final name is complete
        ckpt.read_checkpoint(path)

    resumed = cosplace_cli("train", "--resume", run_dir, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert not list(run_dir.glob(".*.tmp")), "a temp file the killed process left is removed"
    if expected is None:
        assert "no checkpoint" in resumed.stderr and "from the beginning" in resumed.stderr
    elif expected[0] == ckpt.PREVIOUS:
        assert f"resuming from the previous checkpoint {run_dir / ckpt.PREVIOUS} instead" in resumed.stderr
        assert f"{run_dir / ckpt.LAST}: checkpoint file not found" in resumed.stderr
    else:
        assert f"resumed {run_dir / ckpt.LAST} at epoch {progress[0] + 1}, iteration {progress[1]}" in resumed.stderr
    assert_same_weights(run_dir, reference_run)
