"""`cosplace-xs split-info`: show the CosPlace classes and groups a dataset gives with some M, alpha, N, L."""

from __future__ import annotations

import argparse
from pathlib import Path

from cosplace_xs.config import SplitConfig
from cosplace_xs.data.split import build_split

FLAGS = {
    "M": ("--M", "cell side in metres of a class"),
    "alpha": ("--alpha", "heading sector in degrees of a class"),
    "N": ("--N", "cells between classes of one group"),
    "L": ("--L", "sectors between classes of one group"),
    "min_images_per_class": ("--min-images-per-class", "classes with fewer images are dropped"),
    "groups_num": ("--groups-num", "groups training would use"),
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("split-info", help="show the classes and groups of a training set",
                                   description=__doc__)
    parser.add_argument("dataset", type=Path, metavar="DATASET_DIR",
                        help="dataset root holding train/, or the folder of training images itself")
    defaults = SplitConfig()
    for name, (flag, text) in FLAGS.items():
        parser.add_argument(flag, dest=name, type=int, default=getattr(defaults, name),
                            help=f"{text} (default: {getattr(defaults, name)})")
    parser.add_argument("--cache-dir", type=Path, help="split cache folder (default: $COSPLACE_XS_CACHE/splits "
                                                       "or ~/.cache/cosplace-xs/splits)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = SplitConfig(**{name: getattr(args, name) for name in FLAGS})
    train_dir = args.dataset / "train" if (args.dataset / "train").is_dir() else args.dataset
    split = build_split(train_dir, config, cache_dir=args.cache_dir)
    print(split.summary(max_groups=None))
    if config.groups_num > len(split.groups):
        print(f"note: --groups-num={config.groups_num} is more than the {len(split.groups)} groups; training "
              "would refuse it")
    return 0
