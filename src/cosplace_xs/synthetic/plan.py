"""The synthetic city's plan: districts of square blocks whose walls carry buildings, trees and street lamps.

A district is a grid of streets (centrelines every `pitch` metres, local coordinates x east, y north, origin
at a street crossing) around `blocks_x` x `blocks_y` blocks, plus one ring of outer blocks so views never
end in a void. Every block face is a wall: an axis-aligned segment cut into buildings of 8-20 m, each with
its own height, colour, window grid and ground floor. Everything is drawn from a generator seeded by the
city seed and the district, so the same place always looks the same.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, fields

import numpy as np

SIDEWALK = 3.0  # metres between a wall and the kerb
TREE_OFFSET = 2.2  # metres from the wall into the street
LAMP_OFFSET = 2.7
LAMP_HEIGHT = 6.0


@dataclass(frozen=True)
class Style:
    """The distributions one block's buildings are drawn from; every style shares one vocabulary."""

    hues: tuple[float, ...]  # centres of the facade hues (0-1)
    saturation: tuple[float, float]
    value: tuple[float, float]
    floors: tuple[int, int]
    building_width: tuple[float, float]
    shop_p: float
    vertical_sign_p: float
    board_p: float  # chance of a billboard or mural on the upper floors
    tree_p: float  # chance of a tree every ~11 m of sidewalk


STYLES = {
    "victorian": Style(hues=(0.0, 0.08, 0.14, 0.3, 0.45, 0.58, 0.75, 0.9), saturation=(0.3, 0.75),
                       value=(0.55, 0.95), floors=(2, 4), building_width=(7.0, 13.0), shop_p=0.35,
                       vertical_sign_p=0.0, board_p=0.3, tree_p=0.7),
    "downtown": Style(hues=(0.05, 0.1, 0.35, 0.55, 0.62), saturation=(0.1, 0.5), value=(0.4, 0.9),
                      floors=(4, 8), building_width=(12.0, 22.0), shop_p=0.6, vertical_sign_p=0.1, board_p=0.4,
                      tree_p=0.3),
    "shotengai": Style(hues=(0.0, 0.08, 0.14, 0.2, 0.5, 0.6, 0.8, 0.95), saturation=(0.15, 0.6),
                       value=(0.45, 0.95), floors=(3, 7), building_width=(6.0, 12.0), shop_p=0.85,
                       vertical_sign_p=0.45, board_p=0.5, tree_p=0.1),
}


@dataclass(frozen=True)
class Camera:
    """Where a picture is taken: local metres, compass heading and pitch in degrees, horizontal field of view."""

    x: float
    y: float
    heading: float
    pitch: float = 5.0
    fov: float = 90.0
    height: float = 2.5


@dataclass(frozen=True)
class Walls:
    """Block faces, one row each: `axis` 0 runs east-west at y=`offset`, 1 runs north-south at x=`offset`;
    the street lies on the `normal` side (+1 or -1 along the other axis); `start`..`end` along the wall."""

    axis: np.ndarray
    offset: np.ndarray
    start: np.ndarray
    end: np.ndarray
    normal: np.ndarray


@dataclass(frozen=True)
class Buildings:
    """Building segments of every wall (rows sorted by wall, then start), one array per property."""

    wall: np.ndarray
    start: np.ndarray  # along-wall coordinate where the building begins
    width: np.ndarray
    height: np.ndarray
    ground_height: np.ndarray
    floor_height: np.ndarray
    colour: np.ndarray  # (K, 3) facade albedo
    trim: np.ndarray  # (K, 3) cornice, floor bands and window frames
    glass: np.ndarray  # (K, 3)
    window_spacing: np.ndarray
    window_width: np.ndarray  # fraction of the spacing
    window_height: np.ndarray  # fraction of the floor
    window_sill: np.ndarray
    has_frame: np.ndarray
    has_band: np.ndarray
    is_shop: np.ndarray
    door: np.ndarray  # along-building position of the door
    sign_start: np.ndarray
    sign_end: np.ndarray
    sign_colour: np.ndarray  # (K, 3)
    sign_second: np.ndarray  # (K, 3)
    sign_pattern: np.ndarray  # 0 lettering, 1 stripes, 2 dots, 3 two-tone
    sign_period: np.ndarray
    vertical_sign: np.ndarray  # along-building position of a vertical sign, or -1
    vertical_sign_length: np.ndarray
    board_start: np.ndarray  # along-building start of a billboard or mural (width 0: none)
    board_width: np.ndarray
    board_bottom: np.ndarray  # metres above ground
    board_height: np.ndarray
    board_colour: np.ndarray  # (K, 3)
    board_second: np.ndarray  # (K, 3)
    board_pattern: np.ndarray  # 0 diagonal stripes, 1 disc, 2 checks, 3 two halves
    uid: np.ndarray  # district-unique id, the key of per-window randomness

    def take(self, index: np.ndarray) -> Buildings:
        """The properties of the buildings at `index` (any shape)."""
        return Buildings(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


@dataclass(frozen=True)
class Props:
    """Trees (kind 0) and street lamps (kind 1) on the sidewalks."""

    x: np.ndarray
    y: np.ndarray
    kind: np.ndarray
    height: np.ndarray
    radius: np.ndarray
    colour: np.ndarray  # (P, 3)


@dataclass(frozen=True)
class DistrictPlan:
    """One district: UTM origin of its local frame, street grid, walls, buildings and props."""

    name: str
    origin_east: float
    origin_north: float
    blocks_x: int
    blocks_y: int
    pitch: float
    street_width: float
    walls: Walls
    buildings: Buildings
    props: Props

    def streets(self) -> list[tuple[int, float, float, float]]:
        """Centrelines cameras drive along: (axis, offset, start, end) in local metres (axis as in Walls)."""
        east_west = [(0, j * self.pitch, 0.0, self.blocks_x * self.pitch) for j in range(self.blocks_y + 1)]
        north_south = [(1, i * self.pitch, 0.0, self.blocks_y * self.pitch) for i in range(self.blocks_x + 1)]
        return [s for s in east_west + north_south if s[3] > s[2]]


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)), dtype=np.float32)


def _building_widths(length: float, style: Style, rng: np.random.Generator) -> list[float]:
    """Cut a wall into buildings of the style's widths; a short remainder widens the last one."""
    widths: list[float] = []
    left = length
    while left > 0:
        width = float(rng.uniform(*style.building_width))
        if left - width < style.building_width[0] * 0.6:
            width = left
        widths.append(width)
        left -= width
    return widths


def _building(style: Style, width: float, rng: np.random.Generator) -> dict[str, object]:
    """Properties of one building drawn from `style`."""
    colour = _hsv(rng.choice(style.hues) + rng.normal(0, 0.02), rng.uniform(*style.saturation),
                  rng.uniform(*style.value))
    ground, floor = rng.uniform(3.8, 4.6), rng.uniform(2.9, 3.6)
    floors = int(rng.integers(style.floors[0], style.floors[1] + 1))
    ribbon = rng.random() < 0.12
    sign_start = rng.uniform(0.05, 0.3) * width
    return {
        "width": width, "height": ground + (floors - 1) * floor + 0.6, "ground_height": ground, "floor_height": floor,
        "colour": colour,
        "trim": np.clip(colour * rng.choice([0.55, 0.75, 1.35]) + rng.uniform(0, 0.15), 0, 1),
        "glass": _hsv(rng.uniform(0.52, 0.65), rng.uniform(0.2, 0.5), rng.uniform(0.12, 0.35)),
        "window_spacing": rng.uniform(1.8, 3.4), "window_width": 0.92 if ribbon else rng.uniform(0.35, 0.7),
        "window_height": rng.uniform(0.4, 0.65), "window_sill": rng.uniform(0.2, 0.32),
        "has_frame": rng.random() < 0.6, "has_band": rng.random() < 0.5,
        "is_shop": rng.random() < style.shop_p, "door": rng.uniform(0.15, 0.85) * width,
        "sign_start": sign_start, "sign_end": sign_start + rng.uniform(0.4, 0.95) * (width - sign_start),
        "sign_colour": _hsv(rng.random(), rng.uniform(0.65, 1.0), rng.uniform(0.7, 1.0)),
        "sign_second": _hsv(rng.random(), rng.uniform(0.0, 1.0), rng.choice([0.1, 0.95])),
        "sign_pattern": int(rng.integers(0, 4)), "sign_period": rng.uniform(0.6, 1.6),
        "vertical_sign": rng.uniform(0.1, 0.9) * width if rng.random() < style.vertical_sign_p else -1.0,
        "vertical_sign_length": rng.uniform(3.0, 3.0 + 2.5 * floors),
        **_board(width, ground, ground + (floors - 1) * floor, style, rng),
    }


def _board(width: float, bottom: float, top: float, style: Style, rng: np.random.Generator) -> dict[str, object]:
    """A billboard or mural on the upper floors: a big two-colour shape that marks the place."""
    board_width = rng.uniform(0.4, 0.85) * width if rng.random() < style.board_p and top - bottom > 2.5 else 0.0
    board_height = min(rng.uniform(2.0, 4.5), top - bottom - 0.5)
    return {"board_start": rng.uniform(0.05, 0.95) * (width - board_width), "board_width": board_width,
            "board_bottom": rng.uniform(bottom + 0.3, max(bottom + 0.3, top - board_height)),
            "board_height": board_height,
            "board_colour": _hsv(rng.random(), rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)),
            "board_second": _hsv(rng.random(), rng.uniform(0.0, 1.0), rng.uniform(0.1, 1.0)),
            "board_pattern": int(rng.integers(0, 4))}


def _block_walls(x0: float, x1: float, y0: float, y1: float) -> list[tuple[int, float, float, float, int]]:
    """South, north, west and east faces of a block: (axis, offset, start, end, normal)."""
    return [(0, y0, x0, x1, -1), (0, y1, x0, x1, 1), (1, x0, y0, y1, -1), (1, x1, y0, y1, 1)]


def _props_along(wall: tuple[int, float, float, float, int], style: Style, lamp_spacing: float,
                 rng: np.random.Generator) -> list[tuple[float, float, int, float, float, np.ndarray]]:
    """Trees and lamps on the sidewalk in front of one wall."""
    axis, offset, start, end, normal = wall
    found = []
    for kind, spacing, inset in ((0, 11.0, TREE_OFFSET), (1, lamp_spacing, LAMP_OFFSET)):
        along = start + rng.uniform(2.0, spacing)
        while along < end - 2.0:
            if kind == 1 or rng.random() < style.tree_p:
                across = offset + normal * inset
                x, y = (along, across) if axis == 0 else (across, along)
                if kind == 0:
                    found.append((x, y, 0, rng.uniform(5.0, 8.5), rng.uniform(1.6, 3.0),
                                  _hsv(rng.uniform(0.22, 0.36), rng.uniform(0.4, 0.8), rng.uniform(0.25, 0.5))))
                else:
                    found.append((x, y, 1, LAMP_HEIGHT, 0.12, np.array([0.2, 0.2, 0.22], dtype=np.float32)))
            along += spacing * (rng.uniform(0.8, 1.2) if kind == 0 else 1.0)
    return found


def build_district(name: str, origin_east: float, origin_north: float, blocks_x: int, blocks_y: int,
                   pitch: float, street_width: float, style_mix: dict[str, float],
                   rng: np.random.Generator) -> DistrictPlan:
    """Draw a district: each block (the outer ring included) takes a style from `style_mix`."""
    names = sorted(style_mix)
    weights = np.array([style_mix[n] for n in names], dtype=np.float64)
    half = street_width / 2
    lamp_spacing = float(rng.uniform(22.0, 30.0))
    walls, rows, props = [], [], []
    for i in range(-1, blocks_x + 1):
        for j in range(-1, blocks_y + 1):
            style = STYLES[names[rng.choice(len(names), p=weights / weights.sum())]]
            block = _block_walls(i * pitch + half, (i + 1) * pitch - half, j * pitch + half, (j + 1) * pitch - half)
            for wall in block:
                along = wall[2]
                for width in _building_widths(wall[3] - wall[2], style, rng):
                    rows.append({"wall": len(walls), "start": along, **_building(style, width, rng)})
                    along += width
                props += _props_along(wall, style, lamp_spacing, rng)
                walls.append(wall)
    wall_columns = list(zip(*walls, strict=True))
    plan_walls = Walls(*(np.array(c, dtype=np.float64 if k in (1, 2, 3) else np.int64)
                         for k, c in enumerate(wall_columns)))
    buildings = Buildings(**{f.name: np.array([r[f.name] for r in rows]) for f in fields(Buildings) if f.name != "uid"},
                          uid=np.arange(len(rows), dtype=np.int64))
    prop_columns = list(zip(*props, strict=True))
    plan_props = Props(x=np.array(prop_columns[0]), y=np.array(prop_columns[1]), kind=np.array(prop_columns[2]),
                       height=np.array(prop_columns[3]), radius=np.array(prop_columns[4]),
                       colour=np.stack(prop_columns[5]))
    return DistrictPlan(name, origin_east, origin_north, blocks_x, blocks_y, pitch, street_width, plan_walls,
                        buildings, plan_props)


def locate_buildings(plan: DistrictPlan, wall: np.ndarray, along: np.ndarray) -> np.ndarray:
    """Index of the building at `along` on `wall` (arrays of one shape)."""
    walls = plan.walls
    span = float(np.max(walls.end - walls.start)) + 1.0
    keys = plan.buildings.wall * span + (plan.buildings.start - walls.start[plan.buildings.wall])
    query = wall * span + np.clip(along - walls.start[wall], 0.0, span - 1.0)
    return np.clip(np.searchsorted(keys, query, side="right") - 1, 0, len(keys) - 1)
