"""`cosplace-xs report`: the tables (Markdown, CSV) and plots of a sweep folder, finished or not."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="write the tables and plots of a sweep (report.md)",
                                   description=__doc__)
    parser.add_argument("sweep_dir", type=Path, help="the folder of a sweep (the --out of `cosplace-xs sweep`)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cosplace_xs.sweep.report import write_report

    path = write_report(args.sweep_dir)
    print(f"report: {path} (tables and plots in {path.parent / 'report'})")
    return 0
