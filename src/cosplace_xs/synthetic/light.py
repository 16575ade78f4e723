"""Times of day and weather of the synthetic city: what makes a query look unlike the database."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONDITIONS = ("day", "overcast", "sunny", "dusk", "night", "fog", "rain")


@dataclass(frozen=True)
class Light:
    """How one picture is lit and seen: sky, sun, ambient, tint, haze, lit windows and lamps, tone curve."""

    condition: str
    sky_top: np.ndarray  # (3,)
    sky_horizon: np.ndarray  # (3,)
    ambient: float
    sun: float
    sun_azimuth: float  # degrees, compass
    sun_elevation: float  # degrees
    tint: np.ndarray  # (3,) colour of the light on surfaces
    haze: np.ndarray  # (3,)
    haze_distance: float  # metres at which haze covers 63% of a surface
    window_lit_p: float
    window_glow: float
    lamp_glow: float
    shadows: bool
    clouds: float
    rain: bool
    exposure: float
    contrast: float
    gamma: float


def _rgb(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def _jitter(colour: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    return np.clip(colour * (1.0 + rng.uniform(-amount, amount, 3)), 0.0, 1.0).astype(np.float32)


def sample_light(condition: str, rng: np.random.Generator, base_azimuth: float = 160.0) -> Light:
    """A random instance of `condition` (one of CONDITIONS); day-like sun comes from near `base_azimuth`."""
    azimuth = float(base_azimuth + rng.normal(0, 40))
    common = {"condition": condition, "sun_azimuth": azimuth, "window_lit_p": 0.0, "window_glow": 0.0,
              "lamp_glow": 0.0, "shadows": False, "clouds": 0.0, "rain": False, "exposure": 1.0, "contrast": 1.0,
              "gamma": 1.0}
    if condition in ("day", "sunny", "overcast"):
        sunny = condition == "sunny"
        overcast = condition == "overcast"
        sky_top = _rgb(0.72, 0.74, 0.78) if overcast else _rgb(0.28, 0.48, 0.85)
        values = {
            "sky_top": _jitter(sky_top, rng, 0.1), "sky_horizon": _jitter(_rgb(0.8, 0.84, 0.9), rng, 0.06),
            "ambient": float(rng.uniform(0.75, 0.9)) if overcast else float(rng.uniform(0.5, 0.65)),
            "sun": 0.05 if overcast else float(rng.uniform(0.6, 0.75) if sunny else rng.uniform(0.3, 0.5)),
            "sun_elevation": float(rng.uniform(25, 60)),
            "tint": _jitter(_rgb(1.0, 1.0, 1.0) if not sunny else _rgb(1.05, 1.0, 0.9), rng, 0.05),
            "haze": _rgb(0.78, 0.82, 0.88), "haze_distance": float(rng.uniform(250, 450)),
            "shadows": sunny or (not overcast and rng.random() < 0.4), "clouds": float(rng.uniform(0, 0.6)),
            "exposure": float(rng.uniform(0.9, 1.1)),
            "contrast": float(rng.uniform(1.25, 1.5)) if sunny else float(rng.uniform(0.9, 1.1)),
            "gamma": float(rng.uniform(0.9, 1.1)),
        }
    elif condition == "dusk":
        values = {
            "sky_top": _jitter(_rgb(0.25, 0.2, 0.45), rng, 0.2),
            "sky_horizon": _jitter(_rgb(0.98, 0.55, 0.25), rng, 0.15),
            "ambient": float(rng.uniform(0.25, 0.4)), "sun": float(rng.uniform(0.1, 0.3)),
            "sun_azimuth": float(rng.uniform(240, 300)), "sun_elevation": float(rng.uniform(2, 10)),
            "tint": _jitter(_rgb(1.0, 0.7, 0.5), rng, 0.1), "haze": _rgb(0.75, 0.5, 0.4),
            "haze_distance": float(rng.uniform(150, 300)), "window_lit_p": float(rng.uniform(0.15, 0.35)),
            "window_glow": 0.6, "lamp_glow": 0.5, "exposure": float(rng.uniform(0.9, 1.2)),
        }
    elif condition == "night":
        values = {
            "sky_top": _jitter(_rgb(0.01, 0.015, 0.05), rng, 0.3),
            "sky_horizon": _jitter(_rgb(0.12, 0.09, 0.12), rng, 0.3),
            "ambient": float(rng.uniform(0.04, 0.09)), "sun": 0.0, "sun_elevation": -10.0,
            "tint": _jitter(_rgb(0.7, 0.75, 1.0), rng, 0.1), "haze": _rgb(0.05, 0.05, 0.07),
            "haze_distance": float(rng.uniform(80, 200)), "window_lit_p": float(rng.uniform(0.35, 0.65)),
            "window_glow": 1.0, "lamp_glow": 1.0, "exposure": float(rng.uniform(0.9, 1.4)),
            "gamma": float(rng.uniform(0.8, 1.0)),
        }
    elif condition == "fog":
        values = {
            "sky_top": _jitter(_rgb(0.75, 0.77, 0.8), rng, 0.05), "sky_horizon": _rgb(0.8, 0.82, 0.84),
            "ambient": float(rng.uniform(0.7, 0.85)), "sun": 0.05, "sun_elevation": 30.0,
            "tint": _rgb(0.95, 0.97, 1.0), "haze": _jitter(_rgb(0.78, 0.8, 0.82), rng, 0.05),
            "haze_distance": float(rng.uniform(18, 45)), "contrast": float(rng.uniform(0.75, 0.95)),
        }
    elif condition == "rain":
        values = {
            "sky_top": _jitter(_rgb(0.45, 0.47, 0.52), rng, 0.1), "sky_horizon": _rgb(0.58, 0.6, 0.64),
            "ambient": float(rng.uniform(0.45, 0.6)), "sun": 0.0, "sun_elevation": 30.0,
            "tint": _rgb(0.85, 0.9, 1.0), "haze": _rgb(0.55, 0.57, 0.62), "haze_distance": float(rng.uniform(60, 120)),
            "rain": True, "window_lit_p": 0.15, "window_glow": 0.3, "lamp_glow": 0.3,
            "contrast": float(rng.uniform(0.8, 0.95)),
        }
    else:
        raise ValueError(f"unknown light condition {condition!r}; known: {', '.join(CONDITIONS)}")
    return Light(**{**common, **values})
