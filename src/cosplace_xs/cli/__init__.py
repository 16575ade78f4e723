"""The `cosplace-xs` command: one module per subcommand, each with `add_parser` and `run`.

A command module imports at its top only light modules (config, options, errors, the flag helpers) and the
library inside `run`: building the parser, for `--help` or a mistyped flag, never imports torch and answers at
once (tests/test_cli_startup.py).
"""

from __future__ import annotations

import importlib
import logging
import sys

from cosplace_xs import __version__
from cosplace_xs.cli.command_parser import CommandParser
from cosplace_xs.errors import CosplaceError

COMMANDS = (
    "synth",
    "check_dataset",
    "split_info",
    "train",
    "demo",
    "augment_preview",
    "eval",
    "pca",
    "predict",
    "export",
    "serve",
    "sweep",
    "report",
    "import_photos",
)


def build_parser() -> CommandParser:
    parser = CommandParser(
        prog="cosplace-xs",
        description="Visual geo-localization with CosPlace: train, evaluate, compare, geolocate.",
    )
    parser.add_argument("--version", action="version", version=f"cosplace-xs {__version__}")
    parser.set_defaults(verbose=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=CommandParser)
    for name in COMMANDS:
        module = importlib.import_module(f"cosplace_xs.cli.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, dispatch, and turn the toolkit's own errors into one clear line."""
    parser = build_parser()
    args, extras = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if extras:
        command = parser._subparsers._group_actions[0].choices[args.command]
        command.unknown_options(extras)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    if not args.verbose:  # faiss logs at INFO which of its builds it loads, "Could not load library" included
        logging.getLogger("faiss").setLevel(logging.WARNING)
    try:
        return int(args.run(args) or 0)
    except CosplaceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
