"""A grid that shows what an augmentation setting does (the paper's Fig. 1 and 2): originals, then samples."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from cosplace_xs.augment import BatchAugmentation, denormalize, to_float
from cosplace_xs.augment.geometry import resize

PAD = 4  # pixels between tiles and around the grid
LINE_HEIGHT = 14  # pixels per title line
FONT_SIZE = 11


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    return image.mul(255).round_().clamp_(0, 255).to(torch.uint8).cpu()


def preview_rows(images: list[torch.Tensor], augmentation: BatchAugmentation, samples: int,
                 generator: torch.Generator) -> list[list[torch.Tensor]]:
    """Per image: the original resized to the output size, then `samples` augmented copies, uint8 (3, S, S)."""
    size = augmentation.output_size
    rows = []
    for image in images:
        original = resize(to_float(image).unsqueeze(0), size, size)[0]
        batch = image.unsqueeze(0).expand(samples, -1, -1, -1)
        augmented = denormalize(augmentation(batch, generator))
        rows.append([_to_uint8(original), *(_to_uint8(sample) for sample in augmented)])
    return rows


def _wrap(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and font.getlength(candidate) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return [*lines, line]


def render_grid(rows: list[list[torch.Tensor]], title: str) -> Image.Image:
    """Tiles of equal size in rows on a white page, under `title` wrapped to the page width."""
    tile_h, tile_w = rows[0][0].shape[-2:]
    columns = max(len(row) for row in rows)
    width = PAD + columns * (tile_w + PAD)
    font = ImageFont.load_default(size=FONT_SIZE)
    lines = _wrap(title, font, width - 2 * PAD)
    top = PAD + len(lines) * LINE_HEIGHT
    page = Image.new("RGB", (width, top + PAD + len(rows) * (tile_h + PAD)), "white")
    draw = ImageDraw.Draw(page)
    for index, line in enumerate(lines):
        draw.text((PAD, PAD + index * LINE_HEIGHT), line, fill="black", font=font)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            pixels = Image.fromarray(tile.permute(1, 2, 0).numpy())
            page.paste(pixels, (PAD + c * (tile_w + PAD), top + PAD + r * (tile_h + PAD)))
    return page


def save_augment_preview(images: list[torch.Tensor], augmentation: BatchAugmentation, samples: int,
                         generator: torch.Generator, path: Path, title: str) -> Path:
    """Render `preview_rows` of `images` under `title` and save the grid as a PNG at `path`."""
    render_grid(preview_rows(images, augmentation, samples, generator), title).save(path, format="PNG")
    return path
