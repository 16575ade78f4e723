"""A query beside its top-k database images, each framed green (within the positive threshold of the query's
true position), red (farther) or grey (true position unknown), with its distance in metres underneath."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from cosplace_xs.config import POSITIVE_DIST_THRESHOLD
from cosplace_xs.data.test_set import TestSet

GREEN = (40, 170, 70)
RED = (215, 50, 40)
GREY = (150, 150, 150)
QUERY_FRAME = (40, 90, 200)
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)
BORDER = 5  # pixels of coloured frame
PAD = 6  # pixels between tiles
CAPTION = 20  # pixels of one line of text under each tile
TITLE = 22  # pixels of the title line


def frame_colour(error_m: float | None, threshold_m: float) -> tuple[int, int, int]:
    """Green for a match within the threshold of the true position (a positive), red beyond, grey unknown."""
    if error_m is None:
        return GREY
    return GREEN if error_m <= threshold_m else RED


def _tile(path: Path, size: int, colour: tuple[int, int, int]) -> Image.Image:
    """The image scaled (aspect kept) to fit a `size` square, framed in `colour`; a grey square if unreadable."""
    tile = Image.new("RGB", (size, size), colour)
    inner = size - 2 * BORDER
    try:
        with Image.open(path) as image:
            image = ImageOps.contain(image.convert("RGB"), (inner, inner), Image.Resampling.LANCZOS)
    except (OSError, ValueError):
        image = Image.new("RGB", (inner, inner), GREY)
    canvas = Image.new("RGB", (inner, inner), BACKGROUND)
    canvas.paste(image, ((inner - image.width) // 2, (inner - image.height) // 2))
    tile.paste(canvas, (BORDER, BORDER))
    return tile


def _caption(rank: int, error_m: float | None) -> str:
    return f"#{rank}  {error_m:.0f} m off" if error_m is not None else f"#{rank}  (true position unknown)"


def save_retrieval_picture(query: Path, matches: Sequence[Path], errors_m: Sequence[float | None], path: Path,
                           threshold_m: float = POSITIVE_DIST_THRESHOLD, title: str = "", tile_size: int = 160,
                           query_note: str = "", match_notes: Sequence[str] = ()) -> Path:
    """Write a PNG: the query, then its matches (best first) with their distance to the query's true position.

    `query_note` and `match_notes` (one per match) add a second caption line, e.g. the predicted position and its
    confidence under the query, each match's position and descriptor distance under it."""
    assert len(matches) == len(errors_m), "one error (or None) per match"
    assert not match_notes or len(match_notes) == len(matches), "one note per match"
    font = ImageFont.load_default(size=12)
    count = 1 + len(matches)
    lines = 2 if query_note or match_notes else 1
    width = count * tile_size + (count + 1) * PAD
    height = TITLE + tile_size + lines * CAPTION + 2 * PAD
    picture = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(picture)
    draw.text((PAD, PAD), title or query.name, fill=TEXT, font=font)
    notes = [query_note, *(match_notes or [""] * len(matches))]
    tiles = [(_tile(query, tile_size, QUERY_FRAME), "query")]
    tiles += [(_tile(match, tile_size, frame_colour(error, threshold_m)), _caption(rank, error))
              for rank, (match, error) in enumerate(zip(matches, errors_m, strict=True), start=1)]
    for column, ((tile, caption), note) in enumerate(zip(tiles, notes, strict=True)):
        left = PAD + column * (tile_size + PAD)
        picture.paste(tile, (left, TITLE + PAD))
        draw.text((left + BORDER, TITLE + PAD + tile_size + 3), caption, fill=TEXT, font=font)
        if note:
            draw.text((left + BORDER, TITLE + PAD + tile_size + 3 + CAPTION), note, fill=TEXT, font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, format="PNG")
    return path


def hits_and_misses(first_hit_ranks: np.ndarray, count: int) -> list[int]:
    """Up to `count` query indices, half right at Recall@1 and half wrong (the rest from the other kind when one
    kind runs short), spread evenly over the query list so the choice is the same on every run."""
    hits, misses = np.flatnonzero(first_hit_ranks == 0), np.flatnonzero(first_hit_ranks != 0)
    take_hits = min(len(hits), max(count - len(misses), (count + 1) // 2))
    take_misses = min(len(misses), count - take_hits)

    def spread(indices: np.ndarray, number: int) -> list[int]:
        return [] if number == 0 else indices[np.linspace(0, len(indices) - 1, number).round().astype(int)].tolist()

    return sorted(spread(hits, take_hits) + spread(misses, take_misses))


def save_eval_pictures(test_set: TestSet, predictions: np.ndarray, first_hit_ranks: np.ndarray, folder: Path,
                       count: int, shown: int = 5) -> list[Path]:
    """Pictures of `count` queries of an evaluation (a mix of hits and misses at Recall@1) with their first
    `shown` predictions, framed against the test set's positive threshold."""
    written = []
    for query in hits_and_misses(first_hit_ranks, count):
        top = predictions[query, :shown]
        top = top[top >= 0]  # an approximate search may return fewer than k neighbours
        errors = np.hypot(*(test_set.database_utm[top] - test_set.queries_utm[query]).T).tolist()
        verdict = "hit" if first_hit_ranks[query] == 0 else "miss"
        path = folder / f"query{query:05d}-{verdict}.png"
        written.append(save_retrieval_picture(test_set.queries_paths[query], [test_set.database_paths[i] for i in top],
                                              errors, path, test_set.positive_dist_threshold,
                                              title=f"{test_set.name} query {query} ({verdict} at R@1): "
                                                    f"{test_set.queries_paths[query].name}"))
    return written
