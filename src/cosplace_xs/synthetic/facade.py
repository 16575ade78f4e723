"""Surface materials of the synthetic city: facades (windows, floors, shops, signs), street ground and sky.

Pixels get a material id; each image column has a palette (its building's colours, then the ground's), so
the albedo of the whole picture is one table look-up. Masks are combined by arithmetic, not boolean
indexing, which keeps a 224 px picture at a few milliseconds. Column properties have shape (W,), pixel
coordinates (H, W); colours are planar (3, H, W).
"""

from __future__ import annotations

import numpy as np

from cosplace_xs.synthetic.light import Light
from cosplace_xs.synthetic.plan import SIDEWALK, Buildings

# Material ids; where masks overlap the larger id wins.
WALL, TRIM, GLASS, DOOR, SIGN, SIGN_SECOND, BOARD, BOARD_SECOND = range(8)  # signs and boards glow at night
SIDEWALK_SLAB, PAVING_JOINT, ROAD, ROAD_MARKING = range(8, 12)
MATERIALS = 12
GROUND_COLOURS = np.array([[0.55, 0.55, 0.54], [0.46, 0.46, 0.45], [0.3, 0.3, 0.32], [0.85, 0.83, 0.7]],
                          dtype=np.float32)
CORNICE = 0.6  # metres of trim at the top of every building
SIGN_LOW, SIGN_HIGH = 1.4, 0.2  # the shop sign band, metres below the top of the ground floor


def _u8(mask: np.ndarray, value: int) -> np.ndarray:
    return mask.view(np.uint8) * np.uint8(value)


def _wrap(x: np.ndarray, period: float | np.ndarray) -> np.ndarray:
    """`x` modulo `period` (floor-based: much faster than `%` on floats)."""
    return x - np.floor(x / period) * period


def hash01(*keys: np.ndarray | int) -> np.ndarray:
    """A deterministic pseudo-random number in [0, 1) per element of the integer key arrays (FNV-1a mix)."""
    state = np.full(np.broadcast_shapes(*(np.shape(k) for k in keys)), 2166136261, dtype=np.uint32)
    for key in keys:
        state = (state ^ (np.asarray(key).astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)) * np.uint32(16777619)
    state ^= state >> np.uint32(15)
    state *= np.uint32(2246822519)
    state ^= state >> np.uint32(13)
    return state.astype(np.float32) / np.float32(2.0**32)


def column_palette(b: Buildings) -> np.ndarray:
    """Colours (W, MATERIALS, 3) of every material id for each column's building."""
    ground = np.broadcast_to(GROUND_COLOURS[None], (len(b.colour), 4, 3))
    facade = np.stack([b.colour, b.trim, b.glass, b.trim * 0.45, b.sign_colour, b.sign_second, b.board_colour,
                       b.board_second], axis=1)
    return np.concatenate([facade.astype(np.float32), ground], axis=1)


def _sign_second_colour(b: Buildings, along: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Where a shop sign shows its second colour: lettering, stripes, dots or two tones (its `sign_pattern`)."""
    u = along - b.sign_start[None]
    v = (z - (b.ground_height[None] - SIGN_LOW)) / (SIGN_LOW - SIGN_HIGH)
    period = b.sign_period[None]
    lettering = (_wrap(u * 2.3, 1.0) < 0.55) & (np.abs(v - 0.5) < 0.22)
    stripes = _wrap(u / period, 1.0) < 0.5
    dots = (_wrap(u, period) - period / 2) ** 2 + ((v - 0.5) * 0.85) ** 2 < 0.09
    two_tone = u < 0.4 * (b.sign_end - b.sign_start)[None]
    pattern = b.sign_pattern[None]
    return (((pattern == 0) & lettering) | ((pattern == 1) & stripes) | ((pattern == 2) & dots)
            | ((pattern == 3) & two_tone))


def _board_second_colour(b: Buildings, along: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Where a billboard shows its second colour: diagonal stripes, a disc, checks or two halves."""
    u = (along - b.board_start[None]) / np.maximum(b.board_width[None], 0.1)  # 0-1 across the board
    v = (z - b.board_bottom[None]) / b.board_height[None]
    aspect = b.board_width[None] / b.board_height[None]
    stripes = _wrap((u * aspect + v) * 2.5, 1.0) < 0.5
    disc = ((u - 0.5) * aspect) ** 2 + (v - 0.5) ** 2 < 0.12
    checks = (_wrap(u * 3.0, 1.0) < 0.5) ^ (_wrap(v * 2.0, 1.0) < 0.5)
    halves = u < 0.5
    pattern = b.board_pattern[None]
    return (((pattern == 0) & stripes) | ((pattern == 1) & disc) | ((pattern == 2) & checks)
            | ((pattern == 3) & halves))


def facade_surface(b: Buildings, along: np.ndarray, z: np.ndarray, light: Light,
                   window_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Material ids (H, W) of facades and the light their lit windows give (H, W): `b` holds each column's
    building, `along` the column's position from the building's start (W,), `z` pixel heights in metres."""
    a = along[None].astype(np.float32)
    width, height = b.width[None], b.height[None]
    ground, floor = b.ground_height[None], b.floor_height[None]
    spacing = b.window_spacing[None]
    columns = np.maximum(1.0, np.floor(width / spacing))
    grid = (a - (width - columns * spacing) / 2) / spacing
    column = np.floor(grid)
    fx = np.abs(grid - column - 0.5)
    level = (z - ground) / floor
    storey = np.floor(level)
    fz = level - storey
    half, sill, tall = b.window_width[None] / 2, b.window_sill[None], b.window_height[None]
    in_grid = (column >= 0) & (column < columns)
    upper = (z >= ground) & (z < height - CORNICE) & in_grid
    window = upper & (fx < half) & (fz > sill) & (fz < sill + tall)
    frame_x, frame_z = 0.12 / spacing, 0.12 / floor
    frame = (upper & b.has_frame[None] & (fx < half + frame_x) & (fz > sill - frame_z)
             & (fz < sill + tall + frame_z))
    band = (z >= ground) & b.has_band[None] & (fz < 0.06)
    cornice = z >= height - CORNICE

    low = z < ground
    shop = low & b.is_shop[None]
    door = low & (np.abs(a - b.door[None]) < 0.55) & (z < 2.3)
    sign = (shop & (z > ground - SIGN_LOW) & (z < ground - SIGN_HIGH) & (a > b.sign_start[None])
            & (a < b.sign_end[None]))
    shop_glass = shop & (z > 0.35) & (z < ground - SIGN_LOW - 0.25) & (a > 0.5) & (a < width - 0.5)
    home_window = low & ~b.is_shop[None] & in_grid & (fx < half) & (z > 1.0) & (z < 2.4)
    vertical = b.vertical_sign[None]
    vertical_sign = ((vertical >= 0) & (np.abs(a - vertical) < 0.5) & (z > ground + 0.4)
                     & (z < np.minimum(ground + 0.4 + b.vertical_sign_length[None], height - CORNICE)))
    second = (sign & _sign_second_colour(b, a, z)) | (
        vertical_sign & (_wrap(z * 1.4, 1.0) < 0.45) & (np.abs(a - vertical) < 0.3))

    material = np.maximum(_u8(frame | band | cornice, TRIM), _u8(window | home_window | shop_glass, GLASS))
    material = np.maximum(material, _u8(door, DOOR))
    material = np.maximum(material, _u8(sign | vertical_sign, SIGN))
    material = np.maximum(material, _u8(second, SIGN_SECOND))
    board = ((b.board_width[None] > 0) & (a >= b.board_start[None]) & (a <= (b.board_start + b.board_width)[None])
             & (z >= b.board_bottom[None]) & (z <= (b.board_bottom + b.board_height)[None]))
    material = np.maximum(material, _u8(board, BOARD))
    material = np.maximum(material, _u8(board & _board_second_colour(b, a, z), BOARD_SECOND))

    glow = np.zeros(z.shape, dtype=np.float32)
    if light.window_lit_p > 0:
        uid = b.uid[None]
        chance = hash01(uid, column, storey, window_seed)
        warmth = 0.6 + 0.8 * np.abs(chance / light.window_lit_p - 0.5)  # varied brightness of lit windows
        lit = (window & ~vertical_sign & ~board & (chance < light.window_lit_p)).view(np.uint8) * warmth
        shop_lit = (shop_glass & ~door & (hash01(uid, window_seed) < 0.8)).view(np.uint8) * np.float32(1.1)
        glow = np.maximum(lit, shop_lit) * np.float32(light.window_glow)
    return material, glow


def ground_material(gx: np.ndarray, gy: np.ndarray, pitch: float, street_width: float) -> np.ndarray:
    """Material ids of street ground: asphalt with a dashed centre line and zebra crossings, paved sidewalks."""
    across_x = np.abs(_wrap(gx + pitch / 2, pitch) - pitch / 2)  # distance to the nearest north-south centreline
    across_y = np.abs(_wrap(gy + pitch / 2, pitch) - pitch / 2)
    half = street_width / 2
    kerb = half - SIDEWALK
    road = (across_x < kerb) | (across_y < kerb)
    joint = (_wrap(gx, 1.5) < 0.06) | (_wrap(gy, 1.5) < 0.06)
    centre = (((across_x < 0.12) & (across_y > half) & (_wrap(gy, 6.0) < 3.0))
              | ((across_y < 0.12) & (across_x > half) & (_wrap(gx, 6.0) < 3.0)))
    zebra = (((across_x < kerb) & (across_y > half + 0.5) & (across_y < half + 3.5) & (_wrap(gx, 1.0) < 0.5))
             | ((across_y < kerb) & (across_x > half + 0.5) & (across_x < half + 3.5) & (_wrap(gy, 1.0) < 0.5)))
    material = np.maximum(_u8(joint, PAVING_JOINT), _u8(road, ROAD))
    material = np.maximum(material, np.uint8(SIDEWALK_SLAB))
    return np.maximum(material, _u8(centre | zebra, ROAD_MARKING))


def sky_colour(light: Light, elevation: np.ndarray, azimuth: np.ndarray, cloud_phase: np.ndarray) -> np.ndarray:
    """Sky (3, H, W) from the horizon colour up to the zenith colour, with clouds that turn with the heading;
    `elevation` (H, 1) and `azimuth` (1, W) in radians, `cloud_phase` three random phases."""
    rise = np.clip(elevation / 0.6, 0.0, 1.0) ** 0.6
    gradient = light.sky_horizon[:, None, None] * (1.0 - rise[None]) + light.sky_top[:, None, None] * rise[None]
    sky = np.broadcast_to(gradient, (3, elevation.shape[0], azimuth.shape[1])).astype(np.float32)
    if light.clouds > 0:
        wave = azimuth * 7 + cloud_phase[2]
        noise = (np.sin(azimuth * 3 + cloud_phase[0]) * np.sin(elevation * 9 + cloud_phase[1])
                 + 0.5 * (np.sin(wave) * np.cos(elevation * 4) + np.cos(wave) * np.sin(elevation * 4)))
        cover = (np.clip((noise - 0.5) * 2.0, 0.0, 1.0) * light.clouds).astype(np.float32)
        sky = sky * (1.0 - cover[None]) + np.float32(0.92) * cover[None]
    return sky
