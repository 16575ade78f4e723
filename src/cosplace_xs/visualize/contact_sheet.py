"""A contact sheet of a retrieval task: queries beside the database image taken nearest to them (by UTM)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cosplace_xs.config import POSITIVE_DIST_THRESHOLD
from cosplace_xs.data.layout import TestSetPaths, list_images
from cosplace_xs.data.names import ImageName, parse_name

DEGREES_PER_METRE = 2.0  # a heading gap of 2 degrees weighs as much as 1 m of distance
PAD = 4  # pixels between tiles
CAPTION = 13  # pixels of caption under each tile


def _heading_gap(a: float | None, b: float | None) -> float:
    if a is None or b is None:
        return 0.0
    gap = abs(a - b) % 360.0
    return min(gap, 360.0 - gap)


def nearest_database_image(query: ImageName, database: list[ImageName]) -> int:
    """Index of the database image that best shows the query's place: among those within 25 m (the
    positives), the one with the least distance plus heading gap (1 m per DEGREES_PER_METRE degrees);
    the nearest one when no image is that close."""
    east = np.array([d.utm_east for d in database])
    north = np.array([d.utm_north for d in database])
    distance = np.hypot(east - query.utm_east, north - query.utm_north)
    positives = np.flatnonzero(distance <= POSITIVE_DIST_THRESHOLD)
    if len(positives) == 0:
        return int(np.argmin(distance))
    gaps = np.array([_heading_gap(query.heading, database[i].heading) for i in positives])
    return int(positives[np.argmin(distance[positives] + gaps / DEGREES_PER_METRE)])


def _tile(path: Path, size: int) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)


def _pairs(test_set: TestSetPaths, count: int) -> list[tuple[Path, Path, str, str]]:
    """`count` queries spread over the sorted query list, each with its nearest database image and captions."""
    queries = list_images(test_set.queries_dir, "queries")
    database = list_images(test_set.database_dir, "database images")
    names = [parse_name(p) for p in database]
    chosen = [queries[i] for i in np.linspace(0, len(queries) - 1, min(count, len(queries))).round().astype(int)]
    pairs = []
    for path in chosen:
        query = parse_name(path)
        index = nearest_database_image(query, names)
        match = names[index]
        distance = float(np.hypot(match.utm_east - query.utm_east, match.utm_north - query.utm_north))
        label = query.note or query.prefix or "query"
        pairs.append((path, database[index], f"{test_set.name}: {label}",
                      f"db {distance:.0f} m, {_heading_gap(query.heading, match.heading):.0f} deg"))
    return pairs


def write_contact_sheet(test_sets: list[TestSetPaths], path: Path, pairs_per_set: int = 8, tile: int = 128,
                        pairs_per_row: int = 4) -> Path:
    """Save a PNG grid of query | nearest database image pairs from each test set; returns `path`."""
    pairs = [pair for test_set in test_sets for pair in _pairs(test_set, pairs_per_set)]
    rows = -(-len(pairs) // pairs_per_row)
    cell_w, cell_h = 2 * tile + PAD, tile + CAPTION
    sheet = Image.new("RGB", (pairs_per_row * (cell_w + 3 * PAD) + PAD, rows * (cell_h + PAD) + PAD), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for k, (query, match, query_caption, match_caption) in enumerate(pairs):
        left = PAD + (k % pairs_per_row) * (cell_w + 3 * PAD)
        top = PAD + (k // pairs_per_row) * (cell_h + PAD)
        sheet.paste(_tile(query, tile), (left, top))
        sheet.paste(_tile(match, tile), (left + tile + PAD, top))
        draw.text((left, top + tile + 1), query_caption, fill="black", font=font)
        draw.text((left + tile + PAD, top + tile + 1), match_caption, fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
