"""Every benchmark in quick settings (under 10 minutes on 2 CPU cores), then the issue's targets, met or not.

Usage: python benchmarks/run_all.py [--dataset DIR] [--threads 2] [--device auto] [--json FILE]
           [--wait-idle 0.3] [--wait-load 0.7] [--wait-max 300]
Each script runs in its own process (so its peak memory is its own) and prints its figures, each also as a JSON
line; `--json` collects every JSON line in one file. Without `--dataset` the small synthetic city is generated
into data/benchmarks/ the first time (about a minute) and reused afterwards. On a shared machine, `--wait-idle`
holds each script until the CPU is at most that busy over a second, and `--wait-load` until the 1-minute load
average is below that too (it also counts the previous script, decaying over about a minute), each wait at most
`--wait-max` seconds and not counted as benchmark time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import common
from model_throughput import Variant

HERE = Path(__file__).resolve().parent

# (script, arguments, reads the dataset): quick settings that keep the whole run under 10 minutes on 2 cores
PLAN: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("matmul_ceiling.py", (), False),
    ("augment_throughput.py", (), False),
    ("optimizer_step.py", (), False),
    ("model_throughput.py", ("--sizes", "224", "--steps", "2", "--compile"), False),
    ("data_pipeline.py", (), True),
    ("train_end_to_end.py", ("--iterations", "12", "--rounds", "3", "--bare-steps", "3",
                             "--compiled-precisions", "fp32"), True),
    ("evaluation.py", ("--workers", "0", "--images", "256", "--bare-steps", "3", "--compiled-precisions", "bf16"),
     True),
)

PIPELINE_FACTOR = 2.0  # the data pipeline delivers at least twice what training consumes
MAX_WAIT_SHARE = 0.10
MIN_RATIO_TO_BARE = 0.90
MAX_DATABASE_COPIES = 0.0  # beside the caller's own array


def run_script(script: str, arguments: list[str]) -> tuple[list[dict[str, Any]], float]:
    """Run one benchmark, echo its output as it comes, and return its JSON records and its seconds."""
    start = time.perf_counter()
    environment = {**os.environ, "TQDM_DISABLE": "1"}  # the library's progress bars would flood the output
    process = subprocess.Popen([sys.executable, str(HERE / script), *arguments], stdout=subprocess.PIPE,
                               text=True, cwd=HERE.parent, env=environment)
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    if process.wait() != 0:
        raise SystemExit(f"{script} failed with exit status {process.returncode}")
    return common.parse_records("".join(lines)), time.perf_counter() - start


def _pick(records: list[dict[str, Any]], benchmark: str, **fields: Any) -> list[dict[str, Any]]:
    return [r for r in records if r["benchmark"] == benchmark and all(r.get(k) == v for k, v in fields.items())]


def _fastest_variant_targets(records: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """Per precision, the fastest end-to-end run against the fastest bare variant of that precision (any memory
    format, optimizer kernels, compiled or not) of the same backbone and size: the issue's final target, which
    counts for the precisions whose recall holds."""
    rows = []
    for benchmark, mode, what in (("train_end_to_end", "train", "training"), ("extraction", "infer", "inference")):
        runs = _pick(records, benchmark)
        for precision in dict.fromkeys(r["precision"] for r in runs):
            best = max((r for r in runs if r["precision"] == precision), key=lambda r: r["images_per_s"])
            bare = [r for r in _pick(records, "model_throughput", backbone=best["backbone"], size=best["size"],
                                     mode=mode) if Variant.parse(r["variant"]).precision == precision]
            if not bare:
                continue
            best_bare = max(bare, key=lambda r: r["images_per_s"])
            ratio = best["images_per_s"] / best_bare["images_per_s"]
            compiled = ", compiled" if best.get("compiled") else ""
            rows.append((f"end-to-end {what} ({precision}) >= {100 * MIN_RATIO_TO_BARE:g}% of the fastest bare "
                         f"{precision} variant",
                         f"{best['images_per_s']:.1f} img/s ({best['workers']} workers{compiled}) vs "
                         f"{best_bare['images_per_s']:.1f} ({best_bare['variant']}): {100 * ratio:.1f}%",
                         ratio >= MIN_RATIO_TO_BARE))
    return rows


def targets(records: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """(target, what was measured, met) for each target of the issue that the records can answer."""
    rows = []
    e2e = _pick(records, "train_end_to_end")
    fastest_training = max((r["images_per_s"] for r in e2e), default=0.0)
    pipeline = _pick(records, "data_pipeline", stage="pipeline", decoder="torchvision")
    if pipeline and fastest_training:
        best = max(pipeline, key=lambda r: r["images_per_s"])
        rows.append((f"data pipeline >= {PIPELINE_FACTOR:g}x training consumption",
                     f"{best['images_per_s']:.0f} img/s ({best['workers']} workers) vs {fastest_training:.0f} img/s "
                     "trained end to end", best["images_per_s"] >= PIPELINE_FACTOR * fastest_training))
    for record in e2e:
        setting = record["precision"] + (", compiled" if record.get("compiled") else "")
        rows.append((f"training waits for data <= {100 * MAX_WAIT_SHARE:g}% ({setting})",
                     f"{100 * record['wait_share']:.1f}%", record["wait_share"] <= MAX_WAIT_SHARE))
        rows.append((f"end-to-end training >= {100 * MIN_RATIO_TO_BARE:g}% of the bare step ({setting})",
                     f"{record['images_per_s']:.1f} vs {record['bare_images_per_s']:.1f} img/s "
                     f"({100 * record['ratio_to_bare']:.1f}%)", record["ratio_to_bare"] >= MIN_RATIO_TO_BARE))
    for record in _pick(records, "extraction"):
        compiled = ", compiled" if record.get("compiled") else ""
        rows.append((f"descriptor extraction >= {100 * MIN_RATIO_TO_BARE:g}% of bare inference "
                     f"({record['precision']}{compiled}, {record['workers']} workers)",
                     f"{record['images_per_s']:.1f} vs {record['bare_images_per_s']:.1f} img/s "
                     f"({100 * record['ratio_to_bare']:.1f}%)", record["ratio_to_bare"] >= MIN_RATIO_TO_BARE))
    rows += _fastest_variant_targets(records)
    for record in _pick(records, "search", search="library_knn"):
        if "sfxl_database" in record:
            rows.append(("search holds one copy of the database descriptors",
                         f"{record['extra_database_copies']:.2f} extra copies at {record['database']:,}",
                         record["extra_database_copies"] <= MAX_DATABASE_COPIES + 0.1))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    common.add_dataset_args(parser, "train/ and test/")
    parser.add_argument("--json", type=Path, default=None, help="write every JSON line to this file")
    parser.add_argument("--wait-idle", type=float, default=None,
                        help="before each script, wait until at most this share of the CPU is busy")
    parser.add_argument("--wait-load", type=float, default=None,
                        help="with --wait-idle, also wait until the 1-minute load average is below this")
    parser.add_argument("--wait-max", type=float, default=300.0, help="longest wait per script (seconds)")
    args = parser.parse_args()
    device = str(common.setup(args.threads, args.device))
    records: list[dict[str, Any]] = []
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    dataset = common.synthetic_city(args.dataset, args.city_preset)
    seconds["synthetic city"] = time.perf_counter() - start
    waited = 0.0
    for script, arguments, reads_dataset in PLAN:
        if args.wait_idle is not None:
            busy, wait = common.wait_until_idle(args.wait_idle, args.wait_max, args.wait_load)
            waited += wait
            print(f"\n(waited {wait:.0f} s for the CPU to be idle: {100 * busy:.0f}% busy, load average "
                  f"{os.getloadavg()[0]:.2f})", flush=True)
        print(f"\n=== {script} ===", flush=True)
        extra = ["--dataset", str(dataset)] if reads_dataset else []
        script_records, seconds[script] = run_script(
            script, [*arguments, *extra, "--threads", str(args.threads), "--device", device])
        records += script_records
    if args.json is not None:
        args.json.write_text("".join(f"{common.json_line(r)}\n" for r in records))
    print("\n=== targets ===")
    for target, measured, met in targets(records):
        print(f"{'met    ' if met else 'NOT met'}  {target}: {measured}")
    print("\n=== seconds ===")
    for name, taken in seconds.items():
        print(f"{name:24s} {taken:6.1f}")
    print(f"{'total (without waits)':24s} {time.perf_counter() - start - waited:6.1f}")


if __name__ == "__main__":
    main()
