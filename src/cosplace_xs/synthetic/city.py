"""The synthetic city: a dataset in SF-XS's layout and file-name format (docs/architecture.md), drawn from a seed.

    OUT/train/<200 m tile>/*.jpg      street-view panoramas cut in crops, daytime mostly
    OUT/{val,test}/database/*.jpg     clean daytime crops every `database_step` metres
    OUT/{val,test}/queries/*.jpg      other cameras, times and weather (night, dusk, fog, rain, hard sun)
    OUT/tokyo_xs/test/...             a second test set in its own district, Tokyo-XS's mix of day/dusk/night
    OUT/city.json                     options, counts and areas

Train, val, test and tokyo_xs are districts 400 m apart (unseen streets at test time) sharing one vocabulary
of facades, so what is learnt on one transfers. Same seed and options give the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from cosplace_xs import __version__
from cosplace_xs.errors import ConfigError, DatasetLayoutError
from cosplace_xs.progress import progress_bar
from cosplace_xs.synthetic.effects import apply_effects, sample_effects
from cosplace_xs.synthetic.light import CONDITIONS, sample_light
from cosplace_xs.synthetic.plan import DistrictPlan, build_district
from cosplace_xs.synthetic.render import render_view
from cosplace_xs.synthetic.shots import Shot, query_shots, shot_extent, street_length, survey_shots

log = logging.getLogger(__name__)

Mix = tuple[tuple[str, float], ...]
MANIFEST = "city.json"
CITY_ENTRIES = ("train", "val", "test", "tokyo_xs", MANIFEST, "contact_sheet.png")  # what --overwrite replaces
ORIGIN_EAST, ORIGIN_NORTH = 549_005.0, 4_180_005.0  # San Francisco, zone 10S; centrelines mid-cell (x5 m)
AREA_GAP = 400.0  # metres between the districts' outermost streets
CHUNK = 48  # pictures per worker task
SF_STYLES = {"victorian": 0.5, "downtown": 0.35, "shotengai": 0.15}
TOKYO_STYLES = {"shotengai": 0.6, "downtown": 0.3, "victorian": 0.1}


@dataclass(frozen=True)
class CityConfig:
    """Options of the synthetic city (`city_preset` fills them for a named size); blocks are (east, north)."""

    preset: str = "small"
    image_size: int = 224
    seed: int = 0
    block_pitch: float = 100.0  # metres between parallel streets; a multiple of M*N = 50 keeps groups full
    train_blocks: tuple[int, int] = (2, 2)
    val_blocks: tuple[int, int] = (1, 1)
    test_blocks: tuple[int, int] = (2, 1)
    tokyo_blocks: tuple[int, int] = (1, 1)
    train_step: float = 2.0  # metres between training panoramas
    train_headings: int = 12  # crops per panorama, one per 360/n degree sector
    database_step: float = 5.0
    database_headings: int = 12
    val_queries: int = 100
    test_queries: int = 300
    tokyo_queries: int = 150
    train_conditions: Mix = (("day", 0.5), ("sunny", 0.15), ("overcast", 0.2), ("dusk", 0.1), ("night", 0.05))
    database_conditions: Mix = (("day", 0.8), ("sunny", 0.1), ("overcast", 0.1))
    query_conditions: Mix = (("day", 0.15), ("sunny", 0.2), ("overcast", 0.15), ("dusk", 0.2), ("night", 0.15),
                             ("fog", 0.075), ("rain", 0.075))
    tokyo_query_conditions: Mix = (("day", 0.17), ("overcast", 0.16), ("dusk", 0.33), ("night", 0.34))

    def __post_init__(self) -> None:
        def check(ok: bool, option: str, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"city option {option}={getattr(self, option)!r} is out of range: {allowed}")

        check(self.image_size >= 16, "image_size", ">= 16 pixels")
        check(self.block_pitch >= 40, "block_pitch", ">= 40 metres")
        for name in ("train_blocks", "val_blocks", "test_blocks", "tokyo_blocks"):
            blocks = getattr(self, name)
            check(len(blocks) == 2 and blocks[0] >= 1 and blocks[1] >= 0, name, "(east >= 1, north >= 0) blocks")
        for name in ("train_step", "database_step"):
            check(getattr(self, name) > 0, name, "> 0 metres")
        for name in ("train_headings", "database_headings"):
            check(getattr(self, name) >= 1, name, ">= 1")
        for name in ("val_queries", "test_queries", "tokyo_queries"):
            check(getattr(self, name) >= 1, name, ">= 1")
        for name in ("train_conditions", "database_conditions", "query_conditions", "tokyo_query_conditions"):
            mix = getattr(self, name)
            check(len(mix) > 0 and all(c in CONDITIONS and w >= 0 for c, w in mix) and sum(w for _, w in mix) > 0,
                  name, f"(condition, weight) pairs with conditions among {', '.join(CONDITIONS)}")


PRESETS: dict[str, dict[str, object]] = {
    "tiny": {"image_size": 64, "train_blocks": (1, 0), "val_blocks": (1, 0), "test_blocks": (1, 0),
             "tokyo_blocks": (1, 0), "train_step": 2.5, "database_step": 10.0, "val_queries": 20,
             "test_queries": 30, "tokyo_queries": 20},
    "small": {},
    "medium": {"train_blocks": (3, 3), "val_blocks": (2, 1), "test_blocks": (3, 2), "tokyo_blocks": (2, 1),
               "train_step": 1.0, "val_queries": 300, "test_queries": 1000, "tokyo_queries": 315},
    "large": {"train_blocks": (5, 4), "val_blocks": (3, 2), "test_blocks": (5, 3), "tokyo_blocks": (3, 3),
              "train_step": 1.0, "val_queries": 1000, "test_queries": 1000, "tokyo_queries": 315},
}


def city_preset(name: str, **overrides: object) -> CityConfig:
    """The options of preset `name` (tiny, small, medium, large), with `overrides` of single fields."""
    if name not in PRESETS:
        raise ConfigError(f"unknown city preset {name!r}; choose one of {', '.join(PRESETS)}")
    known = {f.name for f in dataclasses.fields(CityConfig)} - {"preset"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown city option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return CityConfig(preset=name, **{**PRESETS[name], **overrides})


@dataclass(frozen=True)
class _Area:
    name: str
    folder: str  # the test set's folder under the root ("train" for training)
    code: int  # keys the area's generators
    blocks: tuple[int, int]
    street_width: float
    styles: dict[str, float]


def _areas(config: CityConfig) -> list[_Area]:
    return [_Area("train", "train", 1, config.train_blocks, 20.0, SF_STYLES),
            _Area("val", "val", 2, config.val_blocks, 20.0, SF_STYLES),
            _Area("test", "test", 3, config.test_blocks, 20.0, SF_STYLES),
            _Area("tokyo_xs", "tokyo_xs/test", 4, config.tokyo_blocks, 16.0, TOKYO_STYLES)]


@dataclass(frozen=True)
class CitySummary:
    """What `generate_city` wrote: pictures per folder, each area's UTM box and street length, seconds taken."""

    root: Path
    counts: dict[str, int]
    extents: dict[str, tuple[float, float, float, float]]
    street_metres: dict[str, float]
    seconds: float = field(compare=False)

    def summary(self) -> str:
        """A few lines for the terminal."""
        lines = [f"synthetic city in {self.root} ({sum(self.counts.values())} pictures, {self.seconds:.1f} s)"]
        lines += [f"  {folder:<26}{count:>7}" for folder, count in self.counts.items()]
        for area, (e0, n0, e1, n1) in self.extents.items():
            lines.append(f"  area {area:<9} UTM 10S east {e0:.0f}-{e1:.0f}, north {n0:.0f}-{n1:.0f} "
                         f"({self.street_metres[area]:.0f} m of street)")
        return "\n".join(lines)


def render_shot(plan: DistrictPlan, shot: Shot, size: int, seed: int) -> tuple[Image.Image, int]:
    """The finished picture of `shot` and its JPEG quality; drawn from a generator of (seed, shot key) alone."""
    rng = np.random.default_rng([seed, *shot.key])
    light = sample_light(shot.condition, rng)
    image = render_view(plan, shot.camera, light, size, rng)
    effects = sample_effects(shot.kind, light, rng)
    return apply_effects(image, shot.camera, light, effects, rng), effects.jpeg_quality


def _render_chunk(task: tuple[DistrictPlan, list[Shot], Path, int, int]) -> int:
    plan, shots, root, size, seed = task
    for shot in shots:
        picture, quality = render_shot(plan, shot, size, seed)
        picture.save(root / shot.path, "JPEG", quality=quality)
    return len(shots)


def _prepare(out_dir: Path, overwrite: bool) -> None:
    """Refuse a non-empty folder unless `overwrite`, which removes only what a previous city wrote there."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DatasetLayoutError(f"{out_dir}: exists and is not a folder; choose another output folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise DatasetLayoutError(f"{out_dir}: folder is not empty; choose an empty or new folder, or use "
                                     "--overwrite to replace the synthetic city in it")
        for entry in CITY_ENTRIES:
            path = out_dir / entry
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def plan_city(config: CityConfig) -> tuple[dict[str, DistrictPlan], dict[str, list[Shot]]]:
    """The districts of the city and the pictures to take in each, all drawn from `config.seed`."""
    plans, shots = {}, {}
    east = ORIGIN_EAST
    for area in _areas(config):
        bx, by = area.blocks
        plan = build_district(area.name, east, ORIGIN_NORTH, bx, by, config.block_pitch, area.street_width,
                              area.styles, np.random.default_rng([config.seed, area.code, 0]))
        east += bx * config.block_pitch + AREA_GAP
        rng = np.random.default_rng([config.seed, area.code, 1])
        if area.name == "train":
            area_shots = survey_shots(plan, "train", "train", config.train_step, config.train_headings,
                                      config.train_conditions, rng, area.code * 10)
        else:
            queries, mix = ((config.tokyo_queries, config.tokyo_query_conditions) if area.name == "tokyo_xs"
                            else (getattr(config, f"{area.name}_queries"), config.query_conditions))
            area_shots = survey_shots(plan, f"{area.folder}/database", "database", config.database_step,
                                      config.database_headings, config.database_conditions, rng, area.code * 10 + 1)
            area_shots += query_shots(plan, f"{area.folder}/queries", queries, mix, rng, area.code * 10 + 2)
        plans[area.name], shots[area.name] = plan, area_shots
    return plans, shots


def _counts(shots: dict[str, list[Shot]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for area_shots in shots.values():
        for shot in area_shots:
            folder = "train" if shot.kind == "train" else shot.path.rsplit("/", 1)[0]
            counts[folder] = counts.get(folder, 0) + 1
    return counts


def generate_city(out_dir: Path, config: CityConfig, workers: int = 2, progress: bool = True,
                  overwrite: bool = False) -> CitySummary:
    """Write the synthetic city into `out_dir` (new or empty, unless `overwrite`) with `workers` processes."""
    if workers < 1:
        raise ConfigError(f"option --workers={workers} is out of range: >= 1")
    start = time.perf_counter()
    out_dir = Path(out_dir)
    _prepare(out_dir, overwrite)
    plans, shots = plan_city(config)
    tasks = []
    for name, area_shots in shots.items():
        for shot in area_shots:
            (out_dir / shot.path).parent.mkdir(parents=True, exist_ok=True)
        tasks += [(plans[name], area_shots[i:i + CHUNK], out_dir, config.image_size, config.seed)
                  for i in range(0, len(area_shots), CHUNK)]
    total = sum(len(s) for s in shots.values())
    log.info("drawing %d pictures of %d px with %d worker(s)", total, config.image_size, workers)
    with progress_bar(total, "synthetic city", "img", progress) as bar:
        if workers == 1:
            for task in tasks:
                bar.update(_render_chunk(task))
        else:
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for done in pool.imap_unordered(_render_chunk, tasks):
                    bar.update(done)
    counts = _counts(shots)
    extents = {name: shot_extent(area_shots, plans[name]) for name, area_shots in shots.items()}
    metres = {name: street_length(plan) for name, plan in plans.items()}
    manifest = {"generator": f"cosplace-xs {__version__} synth", "config": dataclasses.asdict(config),
                "utm_zone": "10S", "counts": counts,
                "areas": {name: {"utm_box": list(extents[name]), "street_metres": metres[name],
                                 "blocks": [plans[name].blocks_x, plans[name].blocks_y]}
                          for name in plans}}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return CitySummary(out_dir, counts, extents, metres, time.perf_counter() - start)
