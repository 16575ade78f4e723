"""`cosplace-xs check-dataset`: list every problem of a dataset's images at once, without training."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cosplace_xs.cli.option_flags import add_group_arguments, given_values
from cosplace_xs.config import TrainConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.options import COMMAND_LINE

TRAIN = "train_"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-dataset", help="check every image of a dataset (names, decoding, folders) and list all problems",
        description=__doc__ + " Exit status 1 when a file or folder is unusable, 0 otherwise.")
    parser.add_argument("folder", type=Path, metavar="DIR",
                        help="dataset root (train/, val/, test/ with database/ and queries/) or any folder of images")
    parser.add_argument("--strict", action="store_true",
                        help="also exit 1 on warnings (non-image files, FIFOs and other special files, "
                             "duplicate names)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="decoding threads")
    add_group_arguments(parser, TrainConfig, TRAIN, only=("max_image_pixels",))
    parser.add_argument("--limit", type=int, default=50, help="problems shown per kind (0: all)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--write-paths-files", action="store_true",
                        help="also write <folder>_images_paths.txt beside each image folder (train/, database/, "
                             "queries/), which eval and train then read instead of walking the folder")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cosplace_xs.data.layout import image_set_folders, write_paths_file
    from cosplace_xs.data.scan import scan_folder

    if args.workers < 1:
        raise ConfigError(f"option --workers={args.workers} is out of range: >= 1")
    if args.limit < 0:
        raise ConfigError(f"option --limit={args.limit} is out of range: >= 0 (0 shows all)")
    max_pixels = TrainConfig.build(given_values(args, TRAIN), COMMAND_LINE).max_image_pixels
    report = scan_folder(args.folder, progress=not args.no_progress, workers=args.workers, max_pixels=max_pixels)
    print(report.format(limit=args.limit or None))
    if args.write_paths_files:
        for folder in image_set_folders(args.folder):
            written, count = write_paths_file(folder)
            print(f"wrote {written} ({count} images)")
    failed = not report.ok or (args.strict and report.num_warnings > 0)
    return 1 if failed else 0
