"""Comparing a loaded state dict with the one a model expects, for error messages that name the differences."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor


def _few(items: list[str], limit: int = 3) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


@dataclass(frozen=True)
class KeyDifferences:
    """How a state dict differs from the expected one: keys missing, keys unexpected, tensors of another shape."""

    missing: list[str]
    unexpected: list[str]
    resized: list[str]  # "key (its shape) instead of (expected shape)"

    @property
    def count(self) -> int:
        """How many keys do not fit: fewer means a closer layout."""
        return len(self.missing) + len(self.unexpected) + len(self.resized)

    def describe(self) -> list[str]:
        """A few of each kind, one phrase per kind that occurs."""
        return [f"{label} {_few(items)}" for label, items in
                (("missing keys", self.missing), ("unexpected keys", self.unexpected),
                 ("wrong shapes", self.resized)) if items]


def key_differences(state: Mapping[str, Any], expected: Mapping[str, Tensor], may_lack: str = "") -> KeyDifferences:
    """The differences of `state` from `expected`; keys ending in `may_lack` may be absent."""
    missing = [k for k in expected if k not in state and not (may_lack and k.endswith(may_lack))]
    unexpected = [k for k in state if k not in expected]
    resized = [f"{k} {tuple(getattr(state[k], 'shape', ()))} instead of {tuple(v.shape)}"
               for k, v in expected.items() if k in state and getattr(state[k], "shape", None) != v.shape]
    return KeyDifferences(missing, unexpected, resized)


def state_mismatches(state: Mapping[str, Any], expected: Mapping[str, Tensor], may_lack: str = "") -> list[str]:
    """Missing keys, unexpected keys and shape differences (a few of each); keys ending in `may_lack` may be absent."""
    return key_differences(state, expected, may_lack).describe()
