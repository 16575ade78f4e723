"""`cosplace-xs import-photos`: turn a folder of geotagged photos into a dataset folder in the SF-XS format.

Positions come from the photos' EXIF GPS tags or from a CSV (--positions), headings from EXIF GPSImgDirection or
the CSV's fourth column. The photos are hard-linked (or copied, --copy) under dataset-format names, never moved
or changed; those without a position are listed in OUT/unplaced.txt, files that are no readable image in
OUT/skipped.txt. The result is a test set for eval (OUT/database, OUT/queries) and a database for
predict --database OUT/database; with --as train, a training set (OUT/train, OUT/val) for train, which needs
every photo's heading: the direction the camera faced.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cosplace_xs.cli.option_flags import add_group_arguments, given_values
from cosplace_xs.config import PhotoImportConfig
from cosplace_xs.options import COMMAND_LINE

PREFIX = "import."


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("import-photos", help="make a dataset folder of your own geotagged photos",
                                   description=__doc__)
    parser.add_argument("source", type=Path, metavar="SRC", help="folder of photos (.jpg, .jpeg, .png; any depth)")
    parser.add_argument("out", type=Path, metavar="OUT", help="dataset folder to write (new or empty)")
    add_group_arguments(parser, PhotoImportConfig, PREFIX)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cosplace_xs.data.photo_import import import_photos

    config = PhotoImportConfig.build(given_values(args, PREFIX), COMMAND_LINE)
    report = import_photos(args.source, args.out, config, progress=not args.no_progress)
    print(report.summary())
    out = args.out
    if config.use_as == "train":
        validation = f" (validation on {out}/val)" if (out / "val").is_dir() else " (no val/: without validation)"
        print(f"next: cosplace-xs train {out}{validation}")
    elif "queries" in report.written:
        print(f"next: cosplace-xs eval --checkpoint RUN {out}   or   cosplace-xs predict --checkpoint RUN "
              f"--database {out}/database PHOTO...")
    else:
        print(f"next: cosplace-xs predict --checkpoint RUN --database {out}/database PHOTO...")
    return 0
