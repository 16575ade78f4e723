"""The SF-XL / SF-XS / Tokyo-XS image file-name format.

    prefix@utm_east@utm_north@utm_zone_number@utm_zone_letter@lat@lon@pano_id@tile_num@heading@pitch@roll@height@timestamp@note@.jpg

Only the file name is split (never the folders above it). Empty fields are allowed except UTM east and
north; names that stop early (some SF-XL test names end after the pano id) leave the rest empty. A name whose
UTM east and north are both empty but which carries lat and lon gets its UTM position (and zone) computed from
them with the `utm` package.
Numbers are read strictly as published: ASCII digits with an optional sign and decimal point (Python's
`float` would also take `549_069.19`, spaces, other scripts' digits, exponents, `inf` and `nan`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import utm

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
DECIMAL = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
# |east| and |north| at most UTM's false northing: any real position fits and distances stay finite. UTM proper
# (east 100,000-999,999 m) is not required here: local coordinates such as 0.0 suit training and test sets, and
# only a conversion to lat/lon needs the real range (see `evaluation.descriptor_store.database_positions`)
UTM_LIMIT_M = 10_000_000
RANGES = {"utm_east": (-UTM_LIMIT_M, UTM_LIMIT_M, "metres"), "utm_north": (-UTM_LIMIT_M, UTM_LIMIT_M, "metres"),
          "lat": (-90, 90, "degrees"), "lon": (-180, 180, "degrees"), "heading": (0, 360, "degrees")}
UTM_ZONES = range(1, 61)
UTM_BANDS = "CDEFGHJKLMNPQRSTUVWX"  # latitude bands, 8 degrees each; I and O are not used


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


def display_name(path: str | Path) -> str:
    """A path as text that any file or terminal takes: bytes that are not UTF-8 shown as `\\xNN`."""
    text = str(path)
    try:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file-system byte maps to
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _number(raw: str, field: str, name: str, required: bool | str = False) -> float | None:
    """A plain decimal number, within the field's range when it has one (see RANGES); None when empty (an error
    when `required`, a string saying what to write instead)."""
    if raw == "":
        if required:
            what = required if isinstance(required, str) else "it must be a number"
            raise BadFileNameError(f"{name}: field '{field}' is empty; {what}")
        return None
    if not DECIMAL.fullmatch(raw):
        try:
            float(raw)
        except ValueError:
            raise BadFileNameError(f"{name}: field '{field}' is {raw!r}, not a number") from None
        raise BadFileNameError(f"{name}: field '{field}' is {raw!r}, not a plain decimal number (ASCII digits with "
                               "an optional sign and decimal point)")
    value = float(raw)
    low, high, unit = RANGES.get(field, (-float("inf"), float("inf"), ""))
    if not low <= value <= high:
        shown = value if field == "heading" else repr(raw)
        raise BadFileNameError(f"{name}: field '{field}' is {shown}, outside [{low}, {high}] {unit}")
    return value


def _zone(raw: str, name: str) -> int | None:
    number = _number(raw, "utm_zone_number", name)  # refuses what is no number at all, in its words
    if number is None:
        return None
    if raw.isdigit() and int(raw) in UTM_ZONES:
        return int(raw)
    raise BadFileNameError(f"{name}: field 'utm_zone_number' is {raw!r}, not a UTM zone number (an integer from "
                           f"{UTM_ZONES[0]} to {UTM_ZONES[-1]})")


def _band(raw: str, name: str) -> str:
    if raw == "" or (len(raw) == 1 and raw in UTM_BANDS):
        return raw
    raise BadFileNameError(f"{name}: field 'utm_zone_letter' is {raw!r}, not a UTM latitude band (a capital letter "
                           "C to X, without I and O)")


def _position(values: dict[str, str], name: str) -> tuple[float, float, int | None, str]:
    """UTM east, north, zone number and band: as written, or computed from lat and lon when east and north are
    both empty."""
    lat, lon = _number(values["lat"], "lat", name), _number(values["lon"], "lon", name)
    zone, band = _zone(values["utm_zone_number"], name), _band(values["utm_zone_letter"], name)
    if values["utm_east"] == values["utm_north"] == "" and lat is not None and lon is not None:
        try:
            east, north, zone, band = utm.from_latlon(lat, lon)
        except utm.OutOfRangeError:
            raise BadFileNameError(f"{name}: lat {lat:g}, lon {lon:g} lie outside UTM (latitudes -80 to 84); give "
                                   "UTM east and north") from None
        return float(east), float(north), int(zone), str(band)
    hint = "it must be a number (or leave UTM east and north empty and give lat and lon)"
    east = _number(values["utm_east"], "utm_east", name, required=hint)
    north = _number(values["utm_north"], "utm_north", name, required=hint)
    return east, north, zone, band


def parse_name(path: str | Path, require_heading: bool = False) -> ImageName:
    """Parse the metadata of an image from its file name; raise BadFileNameError naming the bad field."""
    name = Path(path).name
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise BadFileNameError(f"{display_name(name)}: the file name is not valid UTF-8 (the bytes shown as \\xNN); "
                               "rename it") from None
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
    east, north, zone, band = _position(values, name)
    heading = _number(values["heading"], "heading", name, required=require_heading)
    return ImageName(
        prefix=values["prefix"],
        utm_east=east,
        utm_north=north,
        utm_zone_number=zone,
        utm_zone_letter=band,
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
    if isinstance(value, float):  # positional, never an exponent, which `parse_name` refuses
        return np.format_float_positional(value, trim="-")
    return str(value)


def format_name(image: ImageName, extension: str = ".jpg") -> str:
    """Write the file name of an image in the real datasets' style: the inverse of `parse_name`."""
    values = [_format_value(f.name, getattr(image, f.name)) for f in fields(image)]
    return "@".join(values) + "@" + extension
