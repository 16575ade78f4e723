"""The augmentation flags, the preview grid and the `augment-preview` command."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from PIL import Image

from cosplace_xs.augment import BatchAugmentation
from cosplace_xs.cli import augment_preview
from cosplace_xs.cli.augment_options import add_augment_arguments, augment_config_from_args
from cosplace_xs.config import AugmentConfig
from cosplace_xs.errors import BadImageError, ConfigError
from cosplace_xs.visualize.augment_grid import LINE_HEIGHT, PAD, preview_rows, render_grid

NOTHING = ["--no-augmentation"]


def _config(*flags: str) -> AugmentConfig:
    parser = argparse.ArgumentParser()
    add_augment_arguments(parser)
    return augment_config_from_args(parser.parse_args(list(flags)))


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    augment_preview.add_parser(parser.add_subparsers())
    args = parser.parse_args(["augment-preview", *argv])
    return args.run(args)


def _write(path: Path, pixels: torch.Tensor) -> Path:
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(path)
    return path


def _png(path: Path, colour: tuple[int, int, int], size: int = 40) -> Path:
    return _write(path, torch.tensor(colour, dtype=torch.uint8).view(3, 1, 1).expand(3, size, size))


def test_flags_default_to_the_dataclass():
    assert _config() == AugmentConfig()


def test_flags_set_values_and_switches():
    config = _config("--brightness", "0.5", "--hue", "0.1", "--crop-scale-min", "0.3", "--rotation-degrees", "15",
                     "--cutout-size", "32", "--cutout-p", "0.8", "--noise-std", "0.1", "--no-rotation",
                     "--gaussian-noise", "--horizontal-flip")
    assert (config.brightness, config.hue, config.crop_scale_min, config.rotation_degrees) == (0.5, 0.1, 0.3, 15.0)
    assert (config.cutout_size, config.cutout_p, config.noise_std) == (32, 0.8, 0.1)
    assert (config.rotation, config.gaussian_noise, config.horizontal_flip, config.vertical_flip) == \
        (False, True, True, False)


def test_no_augmentation_turns_every_switch_off_except_those_given():
    config = _config("--no-augmentation", "--cutout")
    assert config == AugmentConfig(color_jitter=False, random_resized_crop=False, rotation=False, cutout=True)


def test_out_of_range_flag_names_the_option():
    with pytest.raises(ConfigError, match="--hue"):
        _config("--hue", "0.9")


def test_grid_size_and_tiles():
    rows = [[torch.full((3, 8, 8), value, dtype=torch.uint8) for value in (10, 20, 30)] for _ in range(2)]
    page = render_grid(rows, "short")
    assert page.size == (PAD + 3 * (8 + PAD), PAD + LINE_HEIGHT + PAD + 2 * (8 + PAD))
    top = PAD + LINE_HEIGHT + PAD
    assert page.getpixel((PAD, top)) == (10, 10, 10)
    assert page.getpixel((PAD + 2 * (8 + PAD) + 7, top + (8 + PAD) + 7)) == (30, 30, 30)
    assert page.getpixel((PAD + 8, top)) == (255, 255, 255)  # gap between tiles


def test_preview_rows_without_augmentation_repeat_the_original():
    image = torch.tensor([200, 100, 50], dtype=torch.uint8).view(3, 1, 1).expand(3, 20, 20)
    rows = preview_rows([image], BatchAugmentation(_config(*NOTHING), 10), 3, torch.Generator().manual_seed(0))
    assert len(rows) == 1 and len(rows[0]) == 4
    for tile in rows[0]:
        assert tile.shape == (3, 10, 10) and tile.dtype == torch.uint8
        assert tile[:, 0, 0].tolist() == [200, 100, 50]


def test_command_writes_a_png_of_the_expected_size(tmp_path, capsys):
    images = [_png(tmp_path / "red.png", (200, 30, 30)), _png(tmp_path / "blue.png", (30, 30, 200), size=64)]
    out = tmp_path / "sub" / "preview.png"
    assert _run(*map(str, images), "--out", str(out), "--samples", "3", "--image-size", "32", "--seed", "1",
                "--cutout-size", "8", "--hue", "0.2") == 0
    assert "saved" in capsys.readouterr().out
    with Image.open(out) as page:
        width, height = page.size
        assert page.format == "PNG"
        assert width == PAD + 4 * (32 + PAD)
        title_height = height - (PAD + PAD + 2 * (32 + PAD))
        assert title_height > 0 and title_height % LINE_HEIGHT == 0
        top = title_height + 2 * PAD
        assert page.getpixel((PAD + 16, top + 16)) == (200, 30, 30)  # first column: the original
        assert page.getpixel((PAD + 16, top + 32 + PAD + 16)) == (30, 30, 200)


def test_same_seed_same_preview(tmp_path):
    image = _write(tmp_path / "a.png",
                   torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)))
    pages = []
    for name, seed in (("one", "3"), ("two", "3"), ("three", "4")):
        _run(str(image), "--out", str(tmp_path / f"{name}.png"), "--samples", "2", "--image-size", "32",
             "--seed", seed)
        with Image.open(tmp_path / f"{name}.png") as page:
            pages.append(page.tobytes())
    assert pages[0] == pages[1] and pages[0] != pages[2]


def test_missing_image_and_bad_samples_are_user_errors(tmp_path):
    with pytest.raises(BadImageError, match=r"nope\.png"):
        _run(str(tmp_path / "nope.png"), "--out", str(tmp_path / "p.png"))
    with pytest.raises(ConfigError, match="--samples"):
        _run(str(_png(tmp_path / "a.png", (1, 2, 3))), "--samples", "0")
