"""The argument parser of every subcommand: no abbreviations, `-v` in any place, CosPlace's own flag
spellings accepted, and a "did you mean" for an unknown option."""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Sequence
from typing import Any

# flags of the official CosPlace code whose name differs from ours by more than underscores
COSPLACE_ALIASES = {
    "--epochs_num": "--epochs",
    "--infer_batch_size": "--eval-batch-size",
}


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser that refuses abbreviations (`--epoch` is not `--epochs`) and reads `--groups_num` as
    `--groups-num`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        if "-v" not in self._option_string_actions:  # the global option, accepted after the command too
            self.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                              help="log debug messages")

    def _spelled_as_ours(self, arg: str) -> str:
        if not arg.startswith("--"):
            return arg
        name, equals, value = arg.partition("=")
        if name in self._option_string_actions:
            return arg
        ours = COSPLACE_ALIASES.get(name) or name.replace("_", "-")
        return ours + equals + value if ours in self._option_string_actions else arg

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        if args is not None:
            args = [self._spelled_as_ours(arg) for arg in args]
        return super().parse_known_args(args, namespace)

    def unknown_options(self, extras: Sequence[str]) -> None:
        """Exit with this command's usage and the closest known flag of each unknown option."""
        hints = []
        for extra in extras:
            if extra.startswith("-"):
                close = difflib.get_close_matches(extra.split("=")[0], list(self._option_string_actions), n=1)
                if close:
                    hints.append(f"{extra}: did you mean {close[0]}?")
        self.error(f"unrecognized arguments: {' '.join(extras)}" + (f" ({'; '.join(hints)})" if hints else ""))
