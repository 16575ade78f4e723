"""Command-line flags for every AugmentConfig field, defaults taken from the dataclass (one source of truth).

Values: `--brightness 0.8 --contrast 0.3 --saturation 0.7 --hue 0.0 --crop-scale-min 0.5 --crop-scale-max 1.0
--rotation-degrees 10 --cutout-size 16 --cutout-p 0.5 --noise-std 0.05`. Switches come in pairs
(`--cutout/--no-cutout`, `--gaussian-noise/--no-gaussian-noise`, ...). `--no-augmentation` turns every
switch off; switches given as well turn theirs back on (`--no-augmentation --cutout`: cutout only).
Destinations are `augment.<field>`, as in `run_options`.
"""

from __future__ import annotations

import argparse
import dataclasses

from cosplace_xs.config import AugmentConfig

HELP = {
    "color_jitter": "ColorJitter with the four strengths below",
    "brightness": "ColorJitter brightness: factor drawn from [max(0, 1 - b), 1 + b]",
    "contrast": "ColorJitter contrast: factor drawn from [max(0, 1 - c), 1 + c]",
    "saturation": "ColorJitter saturation: factor drawn from [max(0, 1 - s), 1 + s]",
    "hue": "ColorJitter hue: shift drawn from [-h, h] of the colour circle, h in [0, 0.5]",
    "random_resized_crop": "RandomResizedCrop to the image size (aspect ratio 3/4 to 4/3)",
    "crop_scale_min": "smallest crop area, as a fraction of the image",
    "crop_scale_max": "largest crop area, as a fraction of the image",
    "rotation": "random rotation about the image centre, corners filled black",
    "rotation_degrees": "rotation angle drawn from [-d, d] degrees",
    "cutout": "Cutout: a black square on some images",
    "cutout_size": "side of the Cutout square in pixels",
    "cutout_p": "probability that an image gets a Cutout square",
    "gaussian_noise": "add Gaussian noise to the pixels",
    "noise_std": "standard deviation of the noise, pixels in [0, 1]",
    "horizontal_flip": "mirror left-right with probability 0.5",
    "vertical_flip": "mirror upside-down with probability 0.5",
}
NO_AUGMENTATION = "no_augmentation"


def _switches() -> list[str]:
    return [item.name for item in dataclasses.fields(AugmentConfig) if isinstance(item.default, bool)]


def add_augment_arguments(parser: argparse.ArgumentParser) -> None:
    """Add an `augmentation options` group with a flag for every AugmentConfig field and `--no-augmentation`."""
    group = parser.add_argument_group("augmentation options (the paper's Table 2; defaults are its best)")
    group.add_argument("--no-augmentation", dest=NO_AUGMENTATION, action="store_true",
                       help="turn every augmentation off (switches given as well turn theirs back on)")
    for item in dataclasses.fields(AugmentConfig):
        kwargs: dict = {"dest": f"augment.{item.name}", "default": argparse.SUPPRESS,
                        "help": f"{HELP.get(item.name, item.name.replace('_', ' '))} (default: {item.default})"}
        if isinstance(item.default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs.update(type=type(item.default), metavar=item.name.upper())
        group.add_argument("--" + item.name.replace("_", "-"), **kwargs)


def augment_config_from_args(args: argparse.Namespace, base: AugmentConfig | None = None) -> AugmentConfig:
    """`base` (defaults if None), then `--no-augmentation`, then the flags actually given."""
    values = dataclasses.asdict(base or AugmentConfig())
    if getattr(args, NO_AUGMENTATION, False):
        values.update(dict.fromkeys(_switches(), False))
    values.update({key.split(".", 1)[1]: value for key, value in vars(args).items() if key.startswith("augment.")})
    return AugmentConfig(**values)
