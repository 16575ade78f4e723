"""A street-level camera in the synthetic city: column ray casting against the block walls, then shading.

The camera keeps verticals vertical (pitch moves the horizon, as in street-view crops), so each image
column is one horizontal ray: its nearest wall gives the facade's distance and along-wall position, and
every pixel of the column is facade, ground or sky by its elevation. Trees and lamps are drawn as sprites
over it, far to near, hidden where a wall is closer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cosplace_xs.synthetic.facade import (
    GLASS,
    MATERIALS,
    SIGN,
    column_palette,
    facade_surface,
    ground_material,
    sky_colour,
)
from cosplace_xs.synthetic.light import Light
from cosplace_xs.synthetic.plan import LAMP_HEIGHT, Camera, DistrictPlan, locate_buildings
from cosplace_xs.synthetic.props import draw_props

LAMP_LIGHT = np.array([1.0, 0.8, 0.55], dtype=np.float32)[:, None, None]
WARM_WINDOW = np.array([1.0, 0.82, 0.5], dtype=np.float32)[:, None, None]
LAMP_REACH = 5.5  # metres, standard deviation of a lamp's pool of light
NEAR, FAR = 0.3, 600.0  # metres


@dataclass(frozen=True)
class _Columns:
    """What each image column's ray meets first."""

    azimuth: np.ndarray  # radians, compass (W,)
    east: np.ndarray  # ray direction
    north: np.ndarray
    cos: np.ndarray  # cosine of the angle to the optical axis
    wall: np.ndarray  # index of the wall hit, -1 when none
    distance: np.ndarray  # horizontal distance to it (inf when none)
    along: np.ndarray  # along-wall coordinate of the hit


def _cast(plan: DistrictPlan, camera: Camera, size: int, focal: float) -> _Columns:
    offsets = (np.arange(size) + 0.5 - size / 2) / focal
    azimuth = np.radians(camera.heading) + np.arctan(offsets)
    east, north = np.sin(azimuth), np.cos(azimuth)
    w = plan.walls
    runs_east = (w.axis == 0)[None]
    toward = np.where(runs_east, north[:, None], east[:, None])
    start = np.where(runs_east, camera.y, camera.x)
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = (w.offset[None] - start) / toward
    along = np.where(runs_east, camera.x + distance * east[:, None], camera.y + distance * north[:, None])
    facing = w.normal[None] * toward < 0
    valid = facing & (distance > NEAR) & (along >= w.start[None]) & (along <= w.end[None])
    distance = np.where(valid, distance, np.inf)
    wall = np.argmin(distance, axis=1)
    rows = np.arange(size)
    best = distance[rows, wall]
    hit = np.isfinite(best)
    return _Columns(azimuth, east, north, 1.0 / np.sqrt(1.0 + offsets**2), np.where(hit, wall, -1), best,
                    np.where(hit, along[rows, wall], 0.0))


def _lamp_light(plan: DistrictPlan, camera: Camera, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Summed pools of light (H, W) of the lamps near the camera at points (x, y, z)."""
    p = plan.props
    near = (p.kind == 1) & (np.hypot(p.x - camera.x, p.y - camera.y) < 60.0)
    total = np.zeros(x.shape, dtype=np.float32)
    spread = np.float32(-1.0 / (2 * LAMP_REACH**2))
    height = (z - LAMP_HEIGHT) ** 2 * np.float32(0.5)
    for lx, ly in zip(p.x[near], p.y[near], strict=True):
        total += np.exp(((x - np.float32(lx)) ** 2 + (y - np.float32(ly)) ** 2 + height) * spread)
    return total


def _sun_on_walls(plan: DistrictPlan, wall: np.ndarray, light: Light) -> np.ndarray:
    """Lambert factor of the sun on each column's wall (0 for walls facing away)."""
    azimuth, elevation = math.radians(light.sun_azimuth), math.radians(max(light.sun_elevation, 0.0))
    sun_east, sun_north = math.sin(azimuth) * math.cos(elevation), math.cos(azimuth) * math.cos(elevation)
    normal = plan.walls.normal[wall].astype(np.float32)
    facing = np.where(plan.walls.axis[wall] == 0, normal * sun_north, normal * sun_east)
    return np.clip(facing, 0.0, 1.0).astype(np.float32)


def render_view(plan: DistrictPlan, camera: Camera, light: Light, size: int, rng: np.random.Generator) -> np.ndarray:
    """The picture (3, size, size), float32 in [0, 1], that `camera` takes in `plan` under `light`."""
    focal = size / 2 / math.tan(math.radians(camera.fov) / 2)
    horizon = size / 2 + focal * math.tan(math.radians(camera.pitch))
    rise = ((horizon - (np.arange(size) + 0.5)) / focal).astype(np.float32)[:, None]  # tangent of elevation
    cols = _cast(plan, camera, size, focal)
    hit = cols.wall >= 0
    wall = np.maximum(cols.wall, 0)
    b = plan.buildings.take(locate_buildings(plan, wall, cols.along))
    depth = np.where(hit, cols.distance * cols.cos, FAR).astype(np.float32)  # along the optical axis
    z = camera.height + depth[None] * rise
    facade = hit[None] & (z >= 0) & (z <= b.height[None])
    ground_depth = camera.height / np.maximum(-rise, 1e-6)
    ground = (rise < 0) & ~facade
    ground_reach = (np.minimum(ground_depth, FAR) / cols.cos[None]).astype(np.float32)
    gx = np.float32(camera.x) + ground_reach * cols.east[None].astype(np.float32)
    gy = np.float32(camera.y) + ground_reach * cols.north[None].astype(np.float32)

    surface, glow = facade_surface(b, cols.along - b.start, z, light, int(rng.integers(2**31)))
    material = np.where(facade, surface, ground_material(gx, gy, plan.pitch, plan.street_width))
    palette = column_palette(b).reshape(-1, 3).T
    index = (np.arange(size, dtype=np.intp)[None] * MATERIALS + material).ravel()
    albedo = np.take(palette, index, axis=1).reshape(3, size, size)

    sun = _sun_on_walls(plan, wall, light)[None] * np.ones_like(z)
    if light.shadows:  # the stepped shadow line of the buildings across the street
        line = rng.uniform(0, 14) + 3.0 * np.abs(((cols.along + rng.uniform(0, 12)) / 12.0) % 2.0 - 1.0)
        sun = sun * (z >= line[None].astype(np.float32))
    ground_sun = np.float32(math.sin(math.radians(max(light.sun_elevation, 0.0))) * 0.8)
    sunlight = np.where(facade, sun, ground_sun)
    illumination = (light.ambient + light.sun * sunlight)[None] * light.tint[:, None, None]
    sign_glow = (facade & (material >= SIGN)).view(np.uint8) * np.float32(light.lamp_glow * 0.9)
    illumination = illumination + sign_glow[None]
    if light.lamp_glow > 0:
        px = np.where(facade, (camera.x + cols.distance * cols.east).astype(np.float32)[None], gx)
        py = np.where(facade, (camera.y + cols.distance * cols.north).astype(np.float32)[None], gy)
        lamps = _lamp_light(plan, camera, px, py, np.where(facade, z, 0.0))
        illumination = illumination + (lamps * light.lamp_glow)[None] * LAMP_LIGHT
    colour = albedo * illumination + (glow * facade)[None] * WARM_WINDOW
    reflection = (facade & (material == GLASS)).view(np.uint8) * np.float32(0.25 * (1.0 - light.window_glow))
    colour += reflection[None] * light.sky_horizon[:, None, None]
    reach = np.where(facade, np.minimum(cols.distance, FAR).astype(np.float32)[None], ground_reach)
    clear = np.exp(reach * np.float32(-1.0 / light.haze_distance))[None]
    colour = colour * clear + light.haze[:, None, None] * (1.0 - clear)
    sky = sky_colour(light, np.arctan(rise), cols.azimuth[None], rng.uniform(0, 2 * np.pi, 3))
    image = np.where((facade | ground)[None], colour, sky).astype(np.float32)
    draw_props(image, plan, camera, light, focal, horizon, depth)
    return image
