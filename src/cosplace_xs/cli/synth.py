"""`cosplace-xs synth`: write the synthetic city, a dataset in SF-XS's layout with a Tokyo-XS-like second test set."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
from pathlib import Path

from cosplace_xs.config import CITY_PRESETS
from cosplace_xs.errors import ConfigError

CONTACT_SHEET = "contact_sheet.png"
OWN_FLAGS = ("preset", "seed", "image_size")  # CityConfig fields with a flag of their own


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("synth", help="generate the synthetic city dataset (train, val, test, tokyo_xs)",
                                   description=__doc__)
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="folder to write (new or empty)")
    parser.add_argument("--preset", default="small", choices=CITY_PRESETS,
                        help="size of the city (default: small, ~11k pictures)")
    parser.add_argument("--image-size", type=int, help="picture side in pixels (default: the preset's; 224 but tiny)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the whole city (default: 0)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override one city option, e.g. --set train_blocks=(3,2) --set test_queries=500 "
                             "(repeatable; fields of CityConfig)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="drawing processes")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a synthetic city already in OUT_DIR (other files there are kept)")
    parser.add_argument("--no-contact-sheet", action="store_true", help=f"do not write OUT_DIR/{CONTACT_SHEET}")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def parse_overrides(items: list[str]) -> dict[str, object]:
    """`FIELD=VALUE` strings to CityConfig overrides; values are Python literals (numbers, tuples)."""
    from cosplace_xs.synthetic.city import CityConfig

    defaults = {f.name: f.default for f in dataclasses.fields(CityConfig) if f.name not in OWN_FLAGS}
    overrides: dict[str, object] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in defaults:
            raise ConfigError(f"option --set {item!r}: expected FIELD=VALUE with FIELD one of "
                              f"{', '.join(sorted(defaults))}")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            raise ConfigError(f"option --set {item!r}: {text!r} is not a number or tuple literal") from None
        expected = type(defaults[name])
        if isinstance(value, int) and expected is float:
            value = float(value)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ConfigError(f"option --set {item!r}: {name} takes a {expected.__name__}, e.g. {defaults[name]!r}")
        overrides[name] = value
    return overrides


def run(args: argparse.Namespace) -> int:
    from cosplace_xs.data.layout import find_test_set
    from cosplace_xs.synthetic.city import city_preset, generate_city
    from cosplace_xs.visualize.contact_sheet import write_contact_sheet

    overrides = parse_overrides(args.overrides)
    overrides["seed"] = args.seed
    if args.image_size is not None:
        overrides["image_size"] = args.image_size
    config = city_preset(args.preset, **overrides)
    summary = generate_city(args.out_dir, config, workers=args.workers, progress=not args.no_progress,
                            overwrite=args.overwrite)
    print(summary.summary())
    if not args.no_contact_sheet:
        sets = [find_test_set(args.out_dir / "test"), find_test_set(args.out_dir / "tokyo_xs" / "test")]
        print(f"contact sheet: {write_contact_sheet(sets, args.out_dir / CONTACT_SHEET)}")
    return 0
