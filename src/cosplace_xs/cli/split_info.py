"""`cosplace-xs split-info`: show the CosPlace classes and groups a dataset gives with some M, alpha, N, L."""

from __future__ import annotations

import argparse
from pathlib import Path

from cosplace_xs.cli.option_flags import add_group_arguments, given_values
from cosplace_xs.config import SplitConfig
from cosplace_xs.options import COMMAND_LINE

PREFIX = "split."


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("split-info", help="show the classes and groups of a training set",
                                   description=__doc__)
    parser.add_argument("dataset", type=Path, metavar="DATASET_DIR",
                        help="dataset root holding train/, or the folder of training images itself")
    add_group_arguments(parser, SplitConfig, PREFIX)
    parser.add_argument("--cache-dir", type=Path, help="split cache folder (default: $COSPLACE_XS_CACHE/splits "
                                                       "or ~/.cache/cosplace-xs/splits)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cosplace_xs.data.split import build_split

    config = SplitConfig.build(given_values(args, PREFIX), COMMAND_LINE)
    train_dir = args.dataset / "train" if (args.dataset / "train").is_dir() else args.dataset
    split = build_split(train_dir, config, cache_dir=args.cache_dir)
    print(split.summary(max_groups=None))
    if config.groups_num > len(split.groups):
        print(f"note: --groups-num={config.groups_num} is more than the {len(split.groups)} groups; training "
              "would refuse it")
    return 0
