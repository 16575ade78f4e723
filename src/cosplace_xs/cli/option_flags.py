"""Command-line flags generated from the option schema of `config.py`: one flag per option, named, typed,
explained and defaulted as the schema says.

Flags keep the names CosPlace users know (`--M`, `--alpha`, `--groups-num`, `--fc-output-dim`,
`--iterations-per-epoch`, `--classifiers-lr`). Values stay strings here: the schema's own coercion and range
checks read them, exactly as they read a YAML file, so both give the same errors.
"""

from __future__ import annotations

import argparse
import typing
from typing import Any

from cosplace_xs.options import OptionGroup, default_of, flag_of, walk

METAVARS = {int: "N", float: "FLOAT", str: "TEXT"}


def _metavar(kind: Any, given: str | None) -> str | None:
    if given:
        return given
    if typing.get_origin(kind) is tuple:
        kind = typing.get_args(kind)[0]
    kind = next((k for k in getattr(kind, "__args__", (kind,)) if k is not type(None)), kind)
    return METAVARS.get(kind)


def add_group_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, group_cls: type[OptionGroup],
                        dest_prefix: str, flags: dict[str, str] | None = None,
                        only: tuple[str, ...] | None = None, defaults: dict[str, Any] | None = None) -> None:
    """A flag for every command-line option of `group_cls` (or those named in `only`), stored as
    `dest_prefix + name` only when given.

    `flags` renames some flags for this command (e.g. `eval`'s `--batch-size` for `--eval-batch-size`);
    `defaults` are the values this command uses when a flag is not given (e.g. `demo`'s shorter training),
    shown in the help instead of the schema's.
    """
    kinds = typing.get_type_hints(group_cls)
    for item, spec in walk(group_cls):
        if not spec.command_line or (only is not None and item.name not in only):
            continue
        kind = kinds[item.name]
        default = (defaults or {}).get(item.name, spec.default_text or default_of(item))
        if isinstance(default, tuple):
            default = " ".join(map(str, default))
        kwargs: dict[str, Any] = {"dest": dest_prefix + item.name, "default": argparse.SUPPRESS,
                                  "help": f"{spec.help} (default: {default})"}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            if typing.get_origin(kind) is tuple:
                kwargs["nargs"] = "+"
            if spec.choices is not None and all(isinstance(choice, str) for choice in spec.choices):
                kwargs["choices"] = spec.choices
                if all(choice == choice.lower() for choice in spec.choices):  # CosPlace's --backbone ResNet18
                    kwargs["type"] = str.lower
            else:
                kwargs["metavar"] = _metavar(kind, spec.metavar)
        flag = (flags or {}).get(item.name) or flag_of(group_cls, item.name)
        parser.add_argument(flag, **kwargs)


def given_values(args: argparse.Namespace, dest_prefix: str) -> dict[str, Any]:
    """The options given on the command line under `dest_prefix`, by field name."""
    return {key.removeprefix(dest_prefix): value for key, value in vars(args).items() if key.startswith(dest_prefix)}

