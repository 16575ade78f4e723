"""Where the synthetic city's pictures are taken and what their files are called.

Training and database pictures are street-view panoramas: a position every `step` metres along each street,
cut into `headings` crops with one heading drawn inside each 360/`headings` degree sector. Along-street
positions sit in the middle of M = 10 m cells (CosPlace's default), so with a step of 2 m every (cell, 30
degree sector) class holds exactly 5 pictures. Queries are taken anywhere on the street, sidewalks included,
at any heading, with other cameras and at other times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import utm

from cosplace_xs.data.names import ImageName, format_name
from cosplace_xs.synthetic.plan import Camera, DistrictPlan

CELL = 10.0  # metres; street centrelines and camera positions keep clear of the cell borders of this grid
ZONE_NUMBER, ZONE_LETTER = 10, "S"
PANO_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


@dataclass(frozen=True)
class Shot:
    """One picture to render: its path under the dataset root, camera, light condition and kind."""

    path: str
    camera: Camera
    condition: str
    kind: str  # "train", "database" or "query"
    key: tuple[int, ...]  # seeds the picture's own generator


def _choose(mix: tuple[tuple[str, float], ...], rng: np.random.Generator) -> str:
    weights = np.array([w for _, w in mix], dtype=np.float64)
    return mix[int(rng.choice(len(mix), p=weights / weights.sum()))][0]


def _utm(plan: DistrictPlan, x: float, y: float) -> tuple[float, float]:
    """UTM east and north of a local point, rounded to the centimetre the file names keep."""
    return round(plan.origin_east + x, 2), round(plan.origin_north + y, 2)


def _latlon(plan: DistrictPlan, x: float, y: float) -> tuple[float, float]:
    """Latitude and longitude of a local point (through its rounded UTM position, as its file name keeps it)."""
    lat, lon = utm.to_latlon(*_utm(plan, x, y), ZONE_NUMBER, ZONE_LETTER)
    return float(lat), float(lon)


def file_name(plan: DistrictPlan, camera: Camera, pano_id: str, tile: str, timestamp: str, prefix: str = "",
              note: str = "", latlon: tuple[float, float] | None = None) -> str:
    """The picture's file name in the SF-XL format, lat/lon computed from its UTM position unless given (the
    crops of one panorama share it: computing it once per panorama is most of the planning time saved)."""
    east, north = _utm(plan, camera.x, camera.y)
    lat, lon = latlon if latlon is not None else _latlon(plan, camera.x, camera.y)
    heading = round(camera.heading % 360.0, 2) % 360.0
    return format_name(ImageName(prefix=prefix, utm_east=east, utm_north=north, utm_zone_number=ZONE_NUMBER,
                                 utm_zone_letter=ZONE_LETTER, lat=lat, lon=lon, pano_id=pano_id,
                                 tile_num=tile, heading=heading, pitch=None, roll=None, height=None,
                                 timestamp=timestamp, note=note))


def _pano_id(rng: np.random.Generator) -> str:
    return "".join(PANO_ALPHABET[rng.integers(0, len(PANO_ALPHABET), 22)])


def _timestamp(rng: np.random.Generator, years: tuple[int, int]) -> str:
    return f"{int(rng.integers(years[0], years[1] + 1))}{int(rng.integers(1, 13)):02d}"


def _on_street(plan: DistrictPlan, axis: int, offset: float, along: float, across: float) -> tuple[float, float]:
    return (along, offset + across) if axis == 0 else (offset + across, along)


def _local(plan: DistrictPlan, x: float, y: float) -> tuple[float, float]:
    east, north = _utm(plan, x, y)
    return east - plan.origin_east, north - plan.origin_north


def _train_folder(plan: DistrictPlan, camera: Camera) -> str:
    """Training pictures go in sub-folders of 200 m UTM tiles, as SF-XS's train set is split in folders."""
    east, north = _utm(plan, camera.x, camera.y)
    return f"{int(east // 200 * 200):07d}_{int(north // 200 * 200):07d}/"


def survey_shots(plan: DistrictPlan, folder: str, kind: str, step: float, headings: int,
                 conditions: tuple[tuple[str, float], ...], rng: np.random.Generator,
                 key: int) -> list[Shot]:
    """Panoramas every `step` metres along every street, each cut into `headings` crops (train or database)."""
    shots = []
    sector = 360.0 / headings
    for axis, offset, begin, end in plan.streets():
        start = -(plan.origin_east if axis == 0 else plan.origin_north) % CELL  # from a cell border on
        count = round((end - begin) / step)
        for k in range(count):
            along = begin + start + (k + 0.5) * step + rng.uniform(-0.2, 0.2) * step
            x, y = _local(plan, *_on_street(plan, axis, offset, along, float(rng.uniform(-2.5, 2.5))))
            pano, stamp = _pano_id(rng), _timestamp(rng, (2013, 2019))
            pitch = float(np.clip(rng.normal(5.0, 1.0), 2.0, 8.0))
            condition = _choose(conditions, rng)  # one capture time per panorama
            latlon = _latlon(plan, x, y)
            for s in range(headings):
                camera = Camera(x=x, y=y, heading=(s + float(rng.uniform(0.02, 0.98))) * sector, pitch=pitch,
                                fov=90.0)
                sub = _train_folder(plan, camera) if kind == "train" else ""
                name = file_name(plan, camera, pano, str(s), stamp, latlon=latlon)
                shots.append(Shot(f"{folder}/{sub}{name}", camera, condition, kind, (key, len(shots))))
    return shots


def query_shots(plan: DistrictPlan, folder: str, count: int, conditions: tuple[tuple[str, float], ...],
                rng: np.random.Generator, key: int) -> list[Shot]:
    """`count` pictures at random places of the streets, sidewalks included, any heading, any camera."""
    streets = plan.streets()
    lengths = np.array([end - begin for _, _, begin, end in streets])
    shots = []
    for index in range(count):
        axis, offset, begin, end = streets[int(rng.choice(len(streets), p=lengths / lengths.sum()))]
        across = float(rng.uniform(-1, 1)) * (plan.street_width / 2 - 2.0)
        x, y = _local(plan, *_on_street(plan, axis, offset, float(rng.uniform(begin, end)), across))
        camera = Camera(x=x, y=y, heading=float(rng.uniform(0, 360)), pitch=float(np.clip(rng.normal(5, 3), -4, 14)),
                        fov=float(rng.uniform(70, 100)), height=float(rng.uniform(1.5, 2.6)))
        condition = _choose(conditions, rng)
        name = file_name(plan, camera, _pano_id(rng), "", _timestamp(rng, (2021, 2023)),
                         prefix="NIGHT" if condition == "night" else "", note=condition)
        shots.append(Shot(f"{folder}/{name}", camera, condition, "query", (key, index)))
    return shots


def shot_extent(shots: list[Shot], plan: DistrictPlan) -> tuple[float, float, float, float]:
    """UTM bounding box (east min, north min, east max, north max) of the shots' positions."""
    xs = [s.camera.x for s in shots]
    ys = [s.camera.y for s in shots]
    return (plan.origin_east + min(xs), plan.origin_north + min(ys), plan.origin_east + max(xs),
            plan.origin_north + max(ys))


def street_length(plan: DistrictPlan) -> float:
    """Metres of street centreline cameras drive along."""
    return float(math.fsum(end - begin for _, _, begin, end in plan.streets()))
