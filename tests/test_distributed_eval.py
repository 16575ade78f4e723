"""`torchrun ... -m cosplace_xs eval`: shards of the image list, and a real two-process eval (gloo on the CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import INFERENCE_FLAGS, run_main, the_error, write_test_set, write_tiny_checkpoint

from cosplace_xs.evaluation.sharded_extraction import shard_bounds

TIMINGS = ("seconds", "query_seconds")


def _bounds(count: int, world_size: int) -> list[tuple[int, int]]:
    return [(s.start, s.stop) for s in (shard_bounds(count, world_size, rank) for rank in range(world_size))]


def test_shards_are_contiguous_and_the_first_ranks_take_the_remainder() -> None:
    assert _bounds(7, 2) == [(0, 4), (4, 7)]
    assert _bounds(10, 4) == [(0, 3), (3, 6), (6, 8), (8, 10)]
    assert _bounds(6, 3) == [(0, 2), (2, 4), (4, 6)]
    assert _bounds(5, 1) == [(0, 5)]


def test_ranks_beyond_the_images_get_empty_shards() -> None:
    assert _bounds(2, 4) == [(0, 1), (1, 2), (2, 2), (2, 2)]
    assert _bounds(0, 2) == [(0, 0), (0, 0)]


def _results(out: Path) -> list[dict]:
    rows = json.loads(next(out.glob("eval-*.json")).read_text())["results"]
    return [{key: value for key, value in row.items() if key not in TIMINGS} for row in rows]


def test_two_processes_give_the_recalls_of_one_and_leave_no_shards(tmp_path: Path, capsys) -> None:
    checkpoint = tmp_path / "tiny.pt"
    write_tiny_checkpoint(checkpoint)
    # 7 database images and 3 queries: uneven shards (4 + 3, 2 + 1); queries 30 m apart along one street
    test_set = write_test_set(tmp_path / "test", [(30.0 * i, 0.0) for i in range(7)],
                              [(5.0, 0.0), (95.0, 0.0), (170.0, 0.0)])
    # nearest_crop: 5 descriptors per query, (3, 5, 32) floats = 1,920 bytes, above the 1,048-byte budget, go
    # through shard files; the database's (7, 32) = 896 bytes through gather
    flags = [str(test_set), "--checkpoint", str(checkpoint), *INFERENCE_FLAGS, "--test-method", "nearest_crop"]
    code, _, _ = run_main(["eval", *flags, "--out", str(tmp_path / "one")], capsys)
    assert code == 0

    env = {**os.environ, "COSPLACE_XS_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "cosplace_xs", "eval", *flags, "--out", str(tmp_path / "two"), "--gather-ram-mb", "0.001"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    assert _results(tmp_path / "two") == _results(tmp_path / "one")
    assert done.stdout.count("results: ") == 1  # rank 1 prints nothing
    through_files = [line for line in done.stderr.splitlines() if "above the RAM budget" in line]
    assert len(through_files) == 1 and "test queries: 0.0 MB of descriptors" in through_files[0], done.stderr
    # the results only: the shard folder is gone
    assert sorted(path.suffix for path in (tmp_path / "two").iterdir()) == [".csv", ".json"]


def test_a_negative_ram_budget_names_the_option(tmp_path: Path, capsys) -> None:
    code, _, err = run_main(["eval", str(tmp_path), "--checkpoint", str(tmp_path / "x.pt"), "--gather-ram-mb=-1"],
                            capsys)
    assert (code, the_error(err)) == (2, "error: option --gather-ram-mb=-1 is out of range: >= 0 MB")
