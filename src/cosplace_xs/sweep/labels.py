"""Names of trials: a readable label from its settings, and the folder name (slug) made from the label."""

from __future__ import annotations

import re
from typing import Any

SLUG_MAX = 80


def format_value(value: Any) -> str:
    """A setting's value as written in labels and tables: 1e-05, 0.5, true, resnet18."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple | list):
        return ",".join(format_value(v) for v in value)
    return str(value)


def settings_label(settings: dict[str, Any]) -> str:
    """`field=value, ...` with the short field name unless two groups share it (then `group.field`)."""
    if not settings:
        return "base"
    short = [key.split(".", 1)[-1] for key in settings]
    names = [name if short.count(name) == 1 else key for key, name in zip(settings, short, strict=True)]
    return ", ".join(f"{name}={format_value(value)}" for name, value in zip(names, settings.values(), strict=True))


def slugify(label: str) -> str:
    """A folder name from a label: lower case letters, digits and dashes ("Rotation(-10,10)" -> rotation-10-10).

    A decimal point becomes `p` (0.5 -> 0p5), so that 0.5 and 5 stay apart.
    """
    text = re.sub(r"(?<=\d)\.(?=\d)", "p", label.lower())
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return text[:SLUG_MAX].rstrip("-") or "trial"
