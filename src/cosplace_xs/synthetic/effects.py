"""What a query camera adds to a street view: cars and pedestrians in front, rain, sensor noise, a tilt, JPEG.

Occluders stand on the ground plane of the camera that took the picture, so their size follows their
distance; their colours are dimmed by the scene's light, and cars show their lights at night.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from cosplace_xs.synthetic.light import Light
from cosplace_xs.synthetic.plan import Camera

SKIN = ((0.95, 0.8, 0.65), (0.75, 0.55, 0.4), (0.45, 0.3, 0.2))


@dataclass(frozen=True)
class Effects:
    """Per-picture additions: occluders, rain streaks, noise (std in [0, 1] units), roll in degrees, JPEG quality."""

    cars: int
    pedestrians: int
    rain: bool
    noise: float
    roll: float
    jpeg_quality: int


def sample_effects(kind: str, light: Light, rng: np.random.Generator) -> Effects:
    """Effects of a `kind` picture: "train" and "database" pictures are clean street views with some traffic,
    "query" pictures are taken by people: more occluders, tilt, noise and varied JPEG quality."""
    if kind == "query":
        dark = light.window_glow >= 1.0
        return Effects(cars=int(rng.integers(0, 3)), pedestrians=int(rng.integers(0, 3)), rain=light.rain,
                       noise=float(rng.uniform(0.02, 0.05) if dark else rng.uniform(0.0, 0.025)),
                       roll=float(rng.normal(0, 3.0)), jpeg_quality=int(rng.integers(45, 96)))
    busy = rng.random() < 0.25
    return Effects(cars=int(rng.integers(1, 3)) if busy else 0, pedestrians=int(rng.integers(0, 2)) if busy else 0,
                   rain=light.rain, noise=0.0, roll=0.0, jpeg_quality=90)


def _scene_colour(colour: np.ndarray, light: Light) -> tuple[int, int, int]:
    lit = np.clip(colour * (light.ambient + 0.6 * light.sun + 0.25 * light.lamp_glow) * light.tint, 0, 1)
    return tuple(round(float(c) * 255) for c in lit)


def _ground_row(camera: Camera, size: int, rng: np.random.Generator) -> tuple[float, float]:
    """A random ground row below the horizon and the pixels per metre at that distance."""
    focal = size / 2 / math.tan(math.radians(camera.fov) / 2)
    horizon = size / 2 + focal * math.tan(math.radians(camera.pitch))
    bottom = float(rng.uniform(horizon + 0.08 * size, size * 1.02))
    return bottom, (bottom - horizon) / camera.height


def _draw_car(draw: ImageDraw.ImageDraw, camera: Camera, size: int, light: Light, rng: np.random.Generator) -> None:
    bottom, per_metre = _ground_row(camera, size, rng)
    length, height = float(rng.uniform(1.8, 4.6)) * per_metre, 1.45 * per_metre
    left = float(rng.uniform(-0.3, 1.0)) * size - length / 2
    body = _scene_colour(np.array(rng.uniform(0.05, 0.95, 3)), light)
    glass = _scene_colour(np.array([0.15, 0.18, 0.22]), light)
    wheel = 0.33 * per_metre
    draw.rounded_rectangle((left, bottom - 0.55 * height - wheel * 0.5, left + length, bottom - wheel * 0.5),
                           radius=max(1, int(0.1 * height)), fill=body)
    draw.rounded_rectangle((left + 0.18 * length, bottom - height, left + 0.82 * length, bottom - 0.5 * height),
                           radius=max(1, int(0.12 * height)), fill=glass)
    for centre in (left + 0.2 * length, left + 0.8 * length):
        draw.ellipse((centre - wheel, bottom - 2 * wheel, centre + wheel, bottom), fill=(15, 15, 15))
    if light.lamp_glow > 0:
        lamp = max(1.5, 0.12 * per_metre)
        colour = (255, 250, 220) if rng.random() < 0.5 else (230, 30, 20)
        for x in (left + 0.06 * length, left + 0.94 * length):
            y = bottom - 0.35 * height
            draw.ellipse((x - lamp, y - lamp, x + lamp, y + lamp), fill=colour)


def _draw_pedestrian(draw: ImageDraw.ImageDraw, camera: Camera, size: int, light: Light,
                     rng: np.random.Generator) -> None:
    bottom, per_metre = _ground_row(camera, size, rng)
    x = float(rng.uniform(0.05, 0.95)) * size
    tall, wide = float(rng.uniform(1.55, 1.9)) * per_metre, 0.24 * per_metre
    head = 0.11 * per_metre
    legs = _scene_colour(np.array(rng.uniform(0.05, 0.5, 3)), light)
    shirt = _scene_colour(np.array(rng.uniform(0.05, 0.95, 3)), light)
    skin = _scene_colour(np.array(SKIN[int(rng.integers(len(SKIN)))]), light)
    draw.rectangle((x - wide * 0.8, bottom - 0.5 * tall, x + wide * 0.8, bottom), fill=legs)
    draw.rectangle((x - wide, bottom - 0.86 * tall, x + wide, bottom - 0.48 * tall), fill=shirt)
    draw.ellipse((x - head, bottom - tall, x + head, bottom - tall + 2 * head), fill=skin)


def _rain(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Slanted light streaks over a third of their length's darkness."""
    size = image.width
    streaks = Image.new("L", image.size, 0)
    draw = ImageDraw.Draw(streaks)
    slant = float(rng.uniform(-0.3, 0.3))
    for _ in range(int(size * 1.2)):
        x, y = rng.uniform(0, size, 2)
        length = rng.uniform(0.03, 0.09) * size
        draw.line((x, y, x + slant * length, y + length), fill=int(rng.integers(60, 140)), width=1)
    return Image.composite(Image.new("RGB", image.size, (215, 220, 228)), image, streaks)


def apply_effects(image: np.ndarray, camera: Camera, light: Light, effects: Effects,
                  rng: np.random.Generator) -> Image.Image:
    """The finished picture: `image` (3, H, W) floats in [0, 1] with occluders, rain, noise and roll."""
    size = image.shape[1]
    if effects.noise > 0:
        image = image + rng.normal(0.0, effects.noise, image.shape).astype(np.float32)
    pixels = (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)
    picture = Image.fromarray(np.ascontiguousarray(pixels))
    draw = ImageDraw.Draw(picture)
    for _ in range(effects.cars):
        _draw_car(draw, camera, size, light, rng)
    for _ in range(effects.pedestrians):
        _draw_pedestrian(draw, camera, size, light, rng)
    if effects.rain:
        picture = _rain(picture, rng)
    if effects.roll:
        angle = math.radians(abs(effects.roll))
        zoom = math.cos(angle) + math.sin(angle)  # crops away the corners the rotation leaves empty
        picture = picture.rotate(effects.roll, resample=Image.Resampling.BILINEAR)
        margin = size * (1 - 1 / zoom) / 2
        picture = picture.resize((size, size), Image.Resampling.BILINEAR,
                                 box=(margin, margin, size - margin, size - margin))
    return picture
