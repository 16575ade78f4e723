"""Sweep settings as flat `group.field` options of RunConfig, checked and typed against its dataclasses."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from cosplace_xs.config import RunConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.options import IN_PLACE
from cosplace_xs.options import check_option as check_option_value
from cosplace_xs.sweep.located_yaml import LocatedYaml, Where

# the sweep's top-level `dataset:` (or --dataset) sets this one, so that users pass their SF-XS path once
DATASET_OPTION = "train.dataset"


def check_option(doc: LocatedYaml, where: Where, key: str, value: Any) -> Any:
    """The value of option `key`, converted to its RunConfig type; errors name the line and the fix."""
    groups = RunConfig.groups()
    known = [f"{group}.{item.name}" for group, group_cls in groups.items() for item in dataclasses.fields(group_cls)]
    if key == DATASET_OPTION:
        raise doc.error(where, f"'{key}' is set by the spec's top-level `dataset:` (or --dataset), not here")
    if key not in known:
        close = difflib.get_close_matches(key, list(known), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise doc.error(where, f"unknown option '{key}'; {hint}options are written group.field with the groups "
                               f"{', '.join(groups)} (see `cosplace-xs train --help`)")
    group, _, name = key.partition(".")
    try:
        return check_option_value(group, groups[group], name, value, IN_PLACE)
    except ConfigError as error:
        raise doc.error(where, str(error)) from None


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
