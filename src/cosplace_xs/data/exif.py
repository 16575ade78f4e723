"""A photo's position and heading from its EXIF GPS tags, as phones and cameras write them.

The GPS IFD (EXIF tag 0x8825) holds latitude and longitude as three rationals, degrees, minutes and seconds,
with a reference letter for the hemisphere (GPSLatitudeRef N or S, GPSLongitudeRef E or W), and the direction
the camera faced as GPSImgDirection, in degrees from true (T) or magnetic (M) north. The photo is only read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

GPS_IFD = 0x8825
LATITUDE_REF, LATITUDE, LONGITUDE_REF, LONGITUDE = 1, 2, 3, 4
IMAGE_DIRECTION = 17


@dataclass(frozen=True)
class Position:
    """Where a photo was taken (WGS84 degrees) and the way it faced (degrees clockwise from north), if known."""

    lat: float
    lon: float
    heading: float | None = None


def _degrees(value: Any, ref: Any, positive: str, negative: str) -> float | None:
    """Degrees from EXIF's (degrees, minutes, seconds) and its hemisphere letter; None when either is unusable."""
    if not isinstance(value, Sequence) or len(value) != 3 or not isinstance(ref, str):
        return None
    try:
        degrees = float(value[0]) + float(value[1]) / 60 + float(value[2]) / 3600
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    letter = ref.strip("\x00 ").upper()
    if not math.isfinite(degrees) or letter not in (positive, negative):
        return None
    return -degrees if letter == negative else degrees


def _heading(value: Any) -> float | None:
    try:
        heading = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    # 0-360 as the file-name format takes it; a camera's 360 or -10 is the same direction as 0 or 350
    return round(heading % 360, 2) if math.isfinite(heading) else None


def gps_position(image: Image.Image) -> tuple[Position | None, str]:
    """The position in an opened image's EXIF GPS tags, or None and the reason there is none."""
    gps = image.getexif().get_ifd(GPS_IFD)
    if not gps:
        return None, "no GPS position in its EXIF"
    lat = _degrees(gps.get(LATITUDE), gps.get(LATITUDE_REF), "N", "S")
    lon = _degrees(gps.get(LONGITUDE), gps.get(LONGITUDE_REF), "E", "W")
    if lat is None or lon is None:
        return None, "EXIF GPS tags without a usable latitude and longitude (and their N/S, E/W references)"
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, f"EXIF GPS position {lat:.6f}, {lon:.6f} is not on Earth"
    if lat == 0 and lon == 0:  # what some cameras write before they have a fix
        return None, "EXIF GPS position 0, 0 (written by cameras without a fix)"
    return Position(lat, lon, _heading(gps.get(IMAGE_DIRECTION))), ""


def read_photo_position(path: Path) -> tuple[Position | None, str]:
    """The EXIF GPS position of an image file (see `gps_position`); reads the header, not the pixels.

    Raises OSError (PIL's UnidentifiedImageError included) for a file that is no readable image."""
    with Image.open(path) as image:
        return gps_position(image)
