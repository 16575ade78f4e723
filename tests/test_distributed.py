"""Distributed training under torchrun: batch slices, and a real two-process run (gloo on the CPU)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cosplace_xs import checkpoints as ckpt
from cosplace_xs.errors import ConfigError
from cosplace_xs.training import run_files
from cosplace_xs.training.distributed import DistributedContext


def test_batch_slices_partition_the_global_batch() -> None:
    slices = [DistributedContext(rank, 4).batch_slice(32) for rank in range(4)]
    assert [(s.start, s.stop) for s in slices] == [(0, 8), (8, 16), (16, 24), (24, 32)]
    assert DistributedContext().batch_slice(32) == slice(0, 32)


def test_a_batch_that_does_not_split_evenly_names_the_option() -> None:
    with pytest.raises(ConfigError, match=r"--batch-size=6 must be divisible by the 4 training processes"):
        DistributedContext(0, 4).batch_slice(6)


def test_two_processes_train_one_run_and_only_the_main_one_writes(tiny_city: Path, tmp_path: Path,
                                                                  cosplace_cli) -> None:
    run_dir = tmp_path / "run"
    env = {**os.environ, "COSPLACE_XS_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "cosplace_xs", "train", str(tiny_city), "--run-dir", str(run_dir), "--no-progress",
               "--device", "cpu", "--no-pretrained", "--image-size", "32", "--batch-size", "4", "--epochs", "2",
               "--iterations-per-epoch", "2", "--checkpoint-every", "1", "--num-workers", "0",
               "--min-images-per-class", "2", "--groups-num", "2", "--fc-output-dim", "8"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    state = ckpt.read_checkpoint(run_dir / ckpt.LAST)
    assert (state["epoch"], state["iteration"]) == (2, 0)
    with (run_dir / run_files.METRICS).open() as file:
        rows = list(csv.DictReader(file))
    assert [(row["epoch"], row["group"]) for row in rows] == [("1", "0"), ("2", "1")]  # one writer, one row each
    # the main process validated the weights every process trained: eval of last.pt gives the same recalls
    evaluated = cosplace_cli("eval", tiny_city / "val", "--checkpoint", run_dir / ckpt.LAST, "--device", "cpu",
                             "--num-workers", "0", "--no-progress", "--out", tmp_path / "eval", timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    results = json.loads(next((tmp_path / "eval").glob("eval-*.json")).read_text())["results"]
    for n in (1, 5, 10, 20):  # the eval table rounds to 0.01
        assert float(rows[1][f"val_R@{n}"]) == pytest.approx(results[0][f"R@{n}"], abs=0.005)
