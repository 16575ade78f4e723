"""Trees and street lamps of the synthetic city drawn as sprites over a rendered street view."""

from __future__ import annotations

import math

import numpy as np

from cosplace_xs.synthetic.light import Light
from cosplace_xs.synthetic.plan import Camera, DistrictPlan

VIEW_RANGE = 90.0  # metres; farther props are lost in the haze anyway
TRUNK = np.array([0.3, 0.22, 0.15], dtype=np.float32)
LAMP_HEAD = np.array([1.0, 0.92, 0.75], dtype=np.float32)


def _shade(albedo: np.ndarray, light: Light, distance: float) -> np.ndarray:
    """Ambient and sky light on a prop, then the haze of its distance."""
    lit = albedo * (light.ambient + 0.5 * light.sun) * light.tint
    clear = math.exp(-distance / light.haze_distance)
    return (lit * clear + light.haze * (1.0 - clear)).astype(np.float32)


def draw_props(image: np.ndarray, plan: DistrictPlan, camera: Camera, light: Light, focal: float,
               horizon: float, depth: np.ndarray) -> None:
    """Draw the trees and lamps in view onto `image` (3, H, W) in place, hidden where `depth` (W,) is nearer."""
    size = image.shape[1]
    p = plan.props
    heading = math.radians(camera.heading)
    dx, dy = p.x - camera.x, p.y - camera.y
    forward = dx * math.sin(heading) + dy * math.cos(heading)
    right = dx * math.cos(heading) - dy * math.sin(heading)
    half_view = math.tan(math.radians(camera.fov) / 2)
    seen = (forward > 1.0) & (forward < VIEW_RANGE) & (np.abs(right) < forward * half_view + 4.0)
    for i in np.flatnonzero(seen)[np.argsort(-forward[seen], kind="stable")]:
        scale = focal / forward[i]
        centre = size / 2 + right[i] * scale
        lamp = p.kind[i] == 1
        reach = (1.2 if lamp else p.radius[i]) * scale
        top = horizon - (p.height[i] + (1.2 if lamp else 0.0) - camera.height) * scale
        bottom = horizon + camera.height * scale
        u0, u1 = max(int(centre - reach), 0), min(math.ceil(centre + reach) + 1, size)
        v0, v1 = max(int(top), 0), min(math.ceil(bottom) + 1, size)
        if u0 >= u1 or v0 >= v1:
            continue
        u = (np.arange(u0, u1) + 0.5 - centre)[None] / scale  # metres right of the prop's axis
        z = camera.height + (horizon - (np.arange(v0, v1) + 0.5))[:, None] / scale  # metres above ground
        visible = (depth[u0:u1] > forward[i])[None]
        patch = image[:, v0:v1, u0:u1]
        if not lamp:
            crown_z = p.height[i] - p.radius[i]
            crown = (u / p.radius[i]) ** 2 + ((z - crown_z) / (0.85 * p.radius[i])) ** 2 < 1.0
            trunk = (np.abs(u) < 0.18) & (z >= 0) & (z < crown_z)
            leaves = 0.75 + 0.35 * np.clip((z - crown_z) / p.radius[i] + 0.5, 0, 1)
            leaves = leaves * (0.85 + 0.15 * np.sin(u * 9.0 + z * 7.0 + i))
            crown_colour = _shade(p.colour[i], light, forward[i])[:, None, None] * leaves[None]
            np.copyto(patch, _shade(TRUNK, light, forward[i])[:, None, None], where=(trunk & ~crown & visible)[None])
            np.copyto(patch, crown_colour.astype(np.float32), where=(crown & visible)[None])
        else:
            pole = (np.abs(u) < max(0.08, 0.6 / scale)) & (z >= 0) & (z < p.height[i])
            head = (np.abs(u) < 0.35) & (np.abs(z - p.height[i]) < 0.15)
            np.copyto(patch, _shade(p.colour[i], light, forward[i])[:, None, None], where=(pole & visible)[None])
            head_colour = LAMP_HEAD * (0.4 + 1.2 * light.lamp_glow)
            np.copyto(patch, head_colour[:, None, None], where=(head & visible)[None])
            if light.lamp_glow > 0:
                halo = np.exp(-(u**2 + (z - p.height[i]) ** 2) / 0.8) * 0.7 * light.lamp_glow
                patch += (halo * visible)[None].astype(np.float32) * LAMP_HEAD[:, None, None]
    np.clip(image, 0.0, 1.0, out=image)
