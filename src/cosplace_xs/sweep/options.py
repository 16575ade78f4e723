"""Sweep settings as flat `group.field` options of RunConfig, checked and typed against its dataclasses."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from functools import cache
from typing import Any

from cosplace_xs.config import RunConfig
from cosplace_xs.sweep.located_yaml import LocatedYaml, Where

# the sweep's top-level `dataset:` (or --dataset) sets this one, so that users pass their SF-XS path once
DATASET_OPTION = "train.dataset"


@cache
def option_types() -> dict[str, Any]:
    """Every `group.field` of RunConfig with its type annotation."""
    types_of = {}
    for group in dataclasses.fields(RunConfig):
        for name, kind in typing.get_type_hints(group.default_factory).items():
            types_of[f"{group.name}.{name}"] = kind
    return types_of


def _number(text: str) -> float | None:
    # PyYAML reads `1e-5` (no dot) as a string; accept it where a number is expected
    try:
        return float(text)
    except ValueError:
        return None


def _coerce(value: Any, kind: Any) -> tuple[bool, Any]:
    """(True, value converted to `kind`) or (False, None) when it does not fit."""
    if isinstance(kind, types.UnionType):
        if value is None and type(None) in kind.__args__:
            return True, None
        kind = next(k for k in kind.__args__ if k is not type(None))
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, list | tuple) or not value:
            return False, None
        items = [_coerce(item, typing.get_args(kind)[0]) for item in value]
        return all(ok for ok, _ in items), tuple(item for _, item in items)
    if kind is bool or isinstance(value, bool):
        return (kind is bool and isinstance(value, bool)), value
    if kind in (int, float):
        number = _number(value) if isinstance(value, str) else value
        if not isinstance(number, int | float):
            return False, None
        if kind is int:
            return float(number).is_integer(), int(number)
        return True, float(number)
    return isinstance(value, kind), value


def _type_name(kind: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(kind, str(kind))


def check_option(doc: LocatedYaml, where: Where, key: str, value: Any) -> Any:
    """The value of option `key`, converted to its RunConfig type; errors name the line and the fix."""
    known = option_types()
    if key == DATASET_OPTION:
        raise doc.error(where, f"'{key}' is set by the spec's top-level `dataset:` (or --dataset), not here")
    if key not in known:
        close = difflib.get_close_matches(key, list(known), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        groups = sorted({k.split('.')[0] for k in known})
        raise doc.error(where, f"unknown option '{key}'; {hint}options are written group.field with the groups "
                               f"{', '.join(groups)} (see `cosplace-xs train --help`)")
    ok, converted = _coerce(value, known[key])
    if not ok:
        raise doc.error(where, f"option '{key}' must be {_type_name(known[key])}, got {value!r}")
    return converted


def flat_options(doc: LocatedYaml, where: Where, value: Any, what: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """A mapping of `group.field: value` or nested `group: {field: value}` as flat, typed options.

    Keys in `skip` (e.g. a trial's `label`) are left out.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise doc.error(where, f"{what} must be a mapping of options (group.field: value), got {value!r}")
    options: dict[str, Any] = {}
    for key, item in value.items():
        if key in skip:
            continue
        key_where = (*where, key)
        if not isinstance(key, str):
            raise doc.error(key_where, f"{what}: option names are strings like augment.rotation_degrees, got {key!r}")
        if "." not in key and isinstance(item, dict):
            for field_name, field_value in item.items():
                name = f"{key}.{field_name}"
                options[name] = check_option(doc, (*key_where, field_name), name, field_value)
        else:
            options[key] = check_option(doc, key_where, key, item)
    return options
