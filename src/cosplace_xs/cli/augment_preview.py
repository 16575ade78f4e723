"""`cosplace-xs augment-preview`: save a PNG grid showing what the training augmentation does to images."""

from __future__ import annotations

import argparse
from pathlib import Path

from cosplace_xs.cli.augment_options import add_augment_arguments, augment_config_from_args
from cosplace_xs.cli.option_flags import add_group_arguments, given_values
from cosplace_xs.config import TrainConfig
from cosplace_xs.errors import BadImageError, ConfigError
from cosplace_xs.options import COMMAND_LINE

TRAIN = "train_"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "augment-preview", help="save a grid of augmented samples of some images, to see what a setting does",
        description=__doc__ + " One row per image: the original, then the augmented samples.")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="JPEG or PNG files")
    parser.add_argument("--out", type=Path, default=Path("preview.png"), help="PNG file to write")
    parser.add_argument("--samples", type=int, default=8, help="augmented samples per image")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random augmentation parameters")
    # inputs are read as training reads them: at its image size, refused above its pixel limit
    add_group_arguments(parser, TrainConfig, TRAIN, only=("image_size", "max_image_pixels"))
    add_augment_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cosplace_xs import seeding
    from cosplace_xs.augment import BatchAugmentation, describe, training_read_size
    from cosplace_xs.data.images import read_image
    from cosplace_xs.visualize.augment_grid import save_augment_preview

    if args.samples < 1:
        raise ConfigError(f"option --samples={args.samples} is out of range: >= 1")
    train = TrainConfig.build(given_values(args, TRAIN), COMMAND_LINE)
    config = augment_config_from_args(args)
    augmentation = BatchAugmentation(config, train.image_size)
    for path in args.images:
        if not path.exists():  # a FIFO or device is not a file either: read_image says what it is
            raise BadImageError(f"{path}: no such image file; check the path")
    images = [read_image(path, training_read_size(train, config), train.max_image_pixels) for path in args.images]
    title = (f"{describe(config)} | {train.image_size} px, seed {args.seed} | "
             "first column: original, then augmented samples")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_augment_preview(images, augmentation, args.samples, seeding.generator(args.seed, seeding.AUGMENT),
                         args.out, title)
    print(f"saved {args.out} ({len(images)} image(s) x {args.samples} samples): {describe(config)}")
    return 0
