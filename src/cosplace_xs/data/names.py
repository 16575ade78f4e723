"""The SF-XL / SF-XS / Tokyo-XS image file-name format.

    prefix@utm_east@utm_north@utm_zone_number@utm_zone_letter@lat@lon@pano_id@tile_num@heading@pitch@roll@height@timestamp@note@.jpg

Only the file name is split (never the folders above it). Empty fields are allowed except UTM east and
north; names that stop early (some SF-XL test names end after the pano id) leave the rest empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

from cosplace_xs.errors import BadFileNameError

FIELD_NAMES = (
    "prefix",
    "utm_east",
    "utm_north",
    "utm_zone_number",
    "utm_zone_letter",
    "lat",
    "lon",
    "pano_id",
    "tile_num",
    "heading",
    "pitch",
    "roll",
    "height",
    "timestamp",
    "note",
)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class ImageName:
    """The metadata an image carries in its file name (field index as in the format above)."""

    prefix: str
    utm_east: float
    utm_north: float
    utm_zone_number: int | None
    utm_zone_letter: str
    lat: float | None
    lon: float | None
    pano_id: str
    tile_num: str
    heading: float | None
    pitch: float | None
    roll: float | None
    height: float | None
    timestamp: str
    note: str


def _split_fields(name: str) -> list[str]:
    """Split a file name into its 15 raw fields (index 0 = prefix), stripping the extension."""
    parts = name.split("@")
    last = parts[-1]
    for ext in IMAGE_EXTENSIONS:
        if last.lower().endswith(ext):
            parts[-1] = last[: -len(ext)]
            break
    if parts[-1] == "" and len(parts) > len(FIELD_NAMES):
        parts.pop()  # the empty stem before `.jpg` in `...@note@.jpg`
    return parts + [""] * (len(FIELD_NAMES) - len(parts))


def _number(raw: str, field: str, name: str, required: bool = False) -> float | None:
    if raw == "":
        if required:
            raise BadFileNameError(f"{name}: field '{field}' is empty; it must be a number")
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadFileNameError(f"{name}: field '{field}' is {raw!r}, not a number") from None
    if not math.isfinite(value):
        raise BadFileNameError(f"{name}: field '{field}' is {raw!r}, not a finite number")
    return value


def parse_name(path: str | Path, require_heading: bool = False) -> ImageName:
    """Parse the metadata of an image from its file name; raise BadFileNameError naming the bad field."""
    name = Path(path).name
    raw = _split_fields(name)
    if len(raw) > len(FIELD_NAMES):
        raise BadFileNameError(
            f"{name}: has {len(raw) - 1} '@'-separated fields, at most {len(FIELD_NAMES) - 1} are allowed"
        )
    if len(name.split("@")) < 3:
        raise BadFileNameError(
            f"{name}: not in the '@utm_east@utm_north@zone@letter@lat@lon@...@.jpg' format "
            "(UTM east and north are required)"
        )
    values = dict(zip(FIELD_NAMES, raw, strict=True))
    zone = _number(values["utm_zone_number"], "utm_zone_number", name)
    heading = _number(values["heading"], "heading", name, required=require_heading)
    if heading is not None and not 0.0 <= heading <= 360.0:
        raise BadFileNameError(f"{name}: field 'heading' is {heading}, outside [0, 360] degrees")
    return ImageName(
        prefix=values["prefix"],
        utm_east=_number(values["utm_east"], "utm_east", name, required=True),
        utm_north=_number(values["utm_north"], "utm_north", name, required=True),
        utm_zone_number=None if zone is None else int(zone),
        utm_zone_letter=values["utm_zone_letter"],
        lat=_number(values["lat"], "lat", name),
        lon=_number(values["lon"], "lon", name),
        pano_id=values["pano_id"],
        tile_num=values["tile_num"],
        heading=heading,
        pitch=_number(values["pitch"], "pitch", name),
        roll=_number(values["roll"], "roll", name),
        height=_number(values["height"], "height", name),
        timestamp=values["timestamp"],
        note=values["note"],
    )


_FORMATS = {"utm_east": "{:010.2f}", "utm_north": "{:010.2f}", "lat": "{:09.5f}", "lon": "{:010.5f}"}


def _format_value(field: str, value: object) -> str:
    if value is None:
        return ""
    if field in _FORMATS:
        return _FORMATS[field].format(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def format_name(image: ImageName, extension: str = ".jpg") -> str:
    """Write the file name of an image in the real datasets' style: the inverse of `parse_name`."""
    values = [_format_value(f.name, getattr(image, f.name)) for f in fields(image)]
    return "@".join(values) + "@" + extension
