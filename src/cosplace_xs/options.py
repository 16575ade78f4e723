"""The option schema: each option's help, flag, type and range live beside its default in `config.py`.

An option is a dataclass field made by `option(...)`. From its metadata come the command-line flag, the help
text, the YAML key, the type coercion and the range check, so a value given as a flag, in a YAML file or in a
sweep passes the same checks and is named the way its source spells it: `--batch-size` on the command line,
`train.batch_size` in a file.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cosplace_xs.errors import ConfigError

COMMAND_LINE = "command line"
IN_PLACE = ""  # a source whose caller names the file and line itself (a sweep spec): keys spelled group.name


@dataclass(frozen=True)
class Option:
    """What the schema knows of one option beyond its default and type."""

    help: str
    flag: str | None = None  # None: `--` + the field name with dashes
    metavar: str | None = None
    low: float | None = None  # smallest allowed value (inclusive unless low_open)
    high: float | None = None  # largest allowed value (inclusive)
    low_open: bool = False
    choices: tuple[Any, ...] | None = None
    pattern: str | None = None  # a regular expression a string value must match whole
    allowed: str | None = None  # the range in words, where low/high/choices do not say it
    default_text: str | None = None  # how --help shows the default, where the value alone does not say it
    command_line: bool = True  # False: a YAML key only (e.g. the dataset, given as a positional argument)


def option(default: Any = dataclasses.MISSING, help: str = "", *, default_factory: Any = dataclasses.MISSING,
           **facts: Any) -> Any:
    """A dataclass field that carries its `Option` facts (see `Option` for the keywords)."""
    metadata = {"option": Option(help=help, **facts)}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def facts(item: dataclasses.Field) -> Option:
    """The `Option` of a dataclass field made by `option(...)`."""
    return item.metadata["option"]


def flag_of(group_cls: type, name: str) -> str:
    """The command-line spelling of option `name` of `group_cls`."""
    item = next(item for item in dataclasses.fields(group_cls) if item.name == name)
    return facts(item).flag or "--" + name.replace("_", "-")


def no_flag_of(group_cls: type, name: str) -> str:
    """The command-line spelling that turns boolean option `name` off (argparse's BooleanOptionalAction)."""
    return "--no-" + flag_of(group_cls, name).removeprefix("--")


def name_in(source: str | None, group: str, group_cls: type, name: str) -> str:
    """How a message names an option: its flag for the command line (or None), `group.name` in a file."""
    if source in (None, COMMAND_LINE):
        return flag_of(group_cls, name)
    return f"{group}.{name}"


def _where(source: str | None) -> str:
    return "" if source in (None, COMMAND_LINE, IN_PLACE) else f"{source}: "


def kind_text(kind: Any) -> str:
    """The expected type in words, for messages."""
    if isinstance(kind, types.UnionType):
        others = [k for k in kind.__args__ if k is not type(None)]
        return kind_text(others[0]) + " or null"
    if typing.get_origin(kind) is tuple:
        return f"a list of {kind_text(typing.get_args(kind)[0]).removeprefix('a ').removeprefix('an ')}s"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(kind, str(kind))


class OptionValueError(ValueError):
    """A value that does not fit its option; `problem` completes "option X=value ...". """

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


NOT_A_NUMBER = "is not a number"


def _number(value: Any) -> float | int:
    # PyYAML reads `1e-5` (no dot) as a string, and flags arrive as strings: both are read as numbers here
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            raise OptionValueError(NOT_A_NUMBER) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OptionValueError(NOT_A_NUMBER)
    return value


def coerce(value: Any, kind: Any) -> Any:
    """`value` converted to `kind` (a field's annotation), or OptionValueError saying why it does not fit."""
    if isinstance(kind, types.UnionType):
        if value is None and type(None) in kind.__args__:
            return None
        kind = next(k for k in kind.__args__ if k is not type(None))
    if typing.get_origin(kind) is tuple:
        if isinstance(value, str):
            value = value.replace(",", " ").split()
        if not isinstance(value, list | tuple) or not value:
            raise OptionValueError(f"must be {kind_text(kind)}")
        return tuple(coerce(item, typing.get_args(kind)[0]) for item in value)
    if kind is bool:
        if not isinstance(value, bool):  # never read "false" as true, nor guess at "no", "0" or "off"
            raise OptionValueError("must be true or false (unquoted in YAML)")
        return value
    if kind is int:
        number = _number(value)
        if isinstance(number, float) and not number.is_integer():
            raise OptionValueError("must be an integer")
        return int(number)
    if kind is float:
        number = float(_number(value))
        if not math.isfinite(number):
            raise OptionValueError("must be a finite number")
        return number
    if kind is str:
        if not isinstance(value, str):
            raise OptionValueError("must be a string")
        return value
    raise TypeError(f"no coercion for {kind}")


def check_range(value: Any, spec: Option) -> None:
    """OptionValueError unless `value` lies in the option's range or choices."""
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if item is None:
            continue
        if spec.choices is not None and item not in spec.choices:
            raise OptionValueError(f"is out of range: {range_text(spec)}")
        if spec.pattern is not None and not re.fullmatch(spec.pattern, item):
            raise OptionValueError(f"is out of range: {range_text(spec)}")
        too_low = spec.low is not None and (item <= spec.low if spec.low_open else item < spec.low)
        too_high = spec.high is not None and item > spec.high
        if too_low or too_high:
            raise OptionValueError(f"is out of range: {range_text(spec)}")


def range_text(spec: Option) -> str:
    """The allowed values in words."""
    if spec.allowed:
        return spec.allowed
    if spec.choices is not None:
        return f"one of {', '.join(map(str, spec.choices))}"
    if spec.low is not None and spec.high is not None:
        return f"{'(' if spec.low_open else '['}{_plain(spec.low)}, {_plain(spec.high)}]"
    if spec.low is not None:
        return f"{'>' if spec.low_open else '>='} {_plain(spec.low)}"
    if spec.high is not None:
        return f"<= {_plain(spec.high)}"
    return "any"


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() and abs(number) < 1e15 else str(number)


def check_option(group: str, group_cls: type, name: str, value: Any, source: str | None) -> Any:
    """`value` coerced to option `group.name` and range-checked; ConfigError naming it as `source` spells it."""
    item = next(item for item in dataclasses.fields(group_cls) if item.name == name)
    kind = typing.get_type_hints(group_cls)[name]
    try:
        converted = coerce(value, kind)
        check_range(converted, facts(item))
    except OptionValueError as error:
        expected = f", expected {kind_text(kind)}" if error.problem == NOT_A_NUMBER else ""
        raise ConfigError(f"{_where(source)}option {name_in(source, group, group_cls, name)}={_shown(value, source)} "
                          f"{error.problem}{expected}") from None
    return converted


def _shown(value: Any, source: str | None) -> str:
    """A value as its source wrote it: bare on the command line, quoted where a file made it a string."""
    if isinstance(value, tuple | list):
        return ",".join(_shown(item, source) for item in value)
    return repr(value) if isinstance(value, str) and source not in (None, COMMAND_LINE) else str(value)


def require(condition: bool, group: str, group_cls: type, names: Sequence[str], value: Any, allowed: str,
            source: str | None = None) -> None:
    """A check across options of one group: ConfigError naming all of them when `condition` is false."""
    if not condition:
        named = "/".join(name_in(source, group, group_cls, name) for name in names)
        raise ConfigError(f"{_where(source)}option {named}={_shown(value, source)} is out of range: {allowed}")


@dataclass
class OptionGroup:
    """Base of the option groups: every field is coerced and range-checked on creation.

    Subclasses set GROUP (their key in a run's config.yaml) and may add cross-option checks in `check_together`.
    """

    GROUP: typing.ClassVar[str] = ""

    def __post_init__(self) -> None:
        self.check_options(None)

    def check_options(self, source: str | None) -> None:
        """Coerce and check every field, naming options as `source` spells them."""
        for item in dataclasses.fields(self):
            object.__setattr__(self, item.name,
                               check_option(self.GROUP, type(self), item.name, getattr(self, item.name), source))
        self.check_together(source)

    def check_together(self, source: str | None) -> None:
        """Checks that involve several options (none by default)."""

    @classmethod
    def build(cls, values: dict[str, Any], source: str | None) -> OptionGroup:
        """A group from a mapping of field values, every error naming the option as `source` spells it."""
        known = [item.name for item in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"{_where(source)}unknown option(s) {unknown} in '{cls.GROUP}'; known: {sorted(known)}")
        checked = {name: check_option(cls.GROUP, cls, name, value, source) for name, value in values.items()}
        group = cls.__new__(cls)
        for item in dataclasses.fields(cls):
            default = item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default
            object.__setattr__(group, item.name, checked.get(item.name, default))
        group.check_options(source)
        return group


def walk(group_cls: type) -> list[tuple[dataclasses.Field, Option]]:
    """The fields of an option group with their facts, in declaration order."""
    return [(item, facts(item)) for item in dataclasses.fields(group_cls)]


def default_of(item: dataclasses.Field) -> Any:
    """A field's default value."""
    return item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default

