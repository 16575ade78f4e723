"""Option groups as dataclasses, validated on creation and serialisable to YAML and back."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cosplace_xs.errors import ConfigError


def _check(condition: bool, option: str, allowed: str, value: object) -> None:
    if not condition:
        raise ConfigError(f"option {option}={value!r} is out of range: {allowed}")


# sectors must tile the full circle, or the last one of every cell would be narrower than the others
ALPHA_VALUES = tuple(degrees for degrees in range(1, 361) if 360 % degrees == 0)


@dataclass
class SplitConfig:
    """CosPlace classes and groups (names as in the paper): cell side M, sector alpha, N, L."""

    M: int = 10
    alpha: int = 30
    N: int = 5
    L: int = 2
    min_images_per_class: int = 10
    groups_num: int = 8

    def __post_init__(self) -> None:
        _check(self.M > 0, "--M", "cell side in metres, > 0", self.M)
        _check(self.alpha in ALPHA_VALUES, "--alpha",
               f"a divisor of 360 degrees ({', '.join(map(str, ALPHA_VALUES))})", self.alpha)
        _check(self.N >= 1, "--N", ">= 1", self.N)
        _check(self.L >= 1, "--L", ">= 1", self.L)
        _check(self.min_images_per_class >= 1, "--min-images-per-class", ">= 1", self.min_images_per_class)
        _check(self.groups_num >= 1, "--groups-num", ">= 1", self.groups_num)


@dataclass
class ModelConfig:
    """Backbone, descriptor size and which weights to start from."""

    backbone: str = "resnet18"
    fc_output_dim: int = 512
    train_all_layers: bool = False
    pretrained: str = "imagenet"  # "imagenet" (torchvision weights API), "none", or a path to a state dict

    def __post_init__(self) -> None:
        _check(self.fc_output_dim >= 1, "--fc-output-dim", ">= 1", self.fc_output_dim)


@dataclass
class AugmentConfig:
    """Batch augmentation of the training images; defaults are the paper's best (Table 2).

    Order, fixed: colour jitter -> random resized crop + rotation (one warp) -> flips -> cutout
    -> Gaussian noise -> ImageNet normalisation.
    """

    color_jitter: bool = True
    brightness: float = 0.8
    contrast: float = 0.3
    saturation: float = 0.7
    hue: float = 0.0
    random_resized_crop: bool = True
    crop_scale_min: float = 0.5
    crop_scale_max: float = 1.0
    rotation: bool = True
    rotation_degrees: float = 10.0
    cutout: bool = True
    cutout_size: int = 16
    cutout_p: float = 0.5
    gaussian_noise: bool = False
    noise_std: float = 0.05
    horizontal_flip: bool = False
    vertical_flip: bool = False

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            _check(getattr(self, name) >= 0, f"--{name}", ">= 0", getattr(self, name))
        _check(0 <= self.hue <= 0.5, "--hue", "[0, 0.5]", self.hue)
        _check(0 < self.crop_scale_min <= self.crop_scale_max <= 1, "--crop-scale-min/max",
               "0 < min <= max <= 1", (self.crop_scale_min, self.crop_scale_max))
        _check(0 <= self.rotation_degrees <= 180, "--rotation-degrees", "[0, 180]", self.rotation_degrees)
        _check(self.cutout_size >= 1, "--cutout-size", ">= 1 pixel", self.cutout_size)
        _check(0 <= self.cutout_p <= 1, "--cutout-p", "[0, 1]", self.cutout_p)
        _check(self.noise_std >= 0, "--noise-std", ">= 0", self.noise_std)


OPTIMIZERS = ("adam", "adamw", "asgd", "sgd")


@dataclass
class OptimConfig:
    """Optimizers of the model and of the per-group CosFace classifiers."""

    optimizer: str = "adam"
    lr: float = 1e-5
    weight_decay: float = 0.0
    asgd_lambda: float = 1e-4
    momentum: float = 0.9
    classifiers_lr: float = 1e-2
    classifiers_weight_decay: float = 0.0

    def __post_init__(self) -> None:
        _check(self.optimizer in OPTIMIZERS, "--optimizer", f"one of {', '.join(OPTIMIZERS)}", self.optimizer)
        for name in ("lr", "classifiers_lr"):
            _check(getattr(self, name) > 0, f"--{name.replace('_', '-')}", "> 0", getattr(self, name))
        for name in ("weight_decay", "classifiers_weight_decay", "asgd_lambda"):
            _check(getattr(self, name) >= 0, f"--{name.replace('_', '-')}", ">= 0", getattr(self, name))


@dataclass
class LossConfig:
    """CosFace scale s and margin m."""

    s: float = 30.0
    m: float = 0.4

    def __post_init__(self) -> None:
        _check(self.s > 0, "--cosface-s", "> 0", self.s)
        _check(0 <= self.m < 1, "--cosface-m", "[0, 1)", self.m)


PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    """Schedule, batches and run bookkeeping of a training run."""

    dataset: str = "data/synthetic_city"
    image_size: int = 224
    batch_size: int = 32
    epochs: int = 8
    iterations_per_epoch: int = 10_000
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto: fp16 AMP on CUDA, fp32 on the CPU
    num_workers: int = 2
    checkpoint_every: int = 500  # iterations between mid-epoch checkpoints (0: epoch ends only)
    skip_bad_images: bool = False
    validate: bool = True
    channels_last: bool = True
    compile: bool = False  # torch.compile the model: faster steps after a first slow one

    def __post_init__(self) -> None:
        _check(self.image_size >= 16, "--image-size", ">= 16 pixels", self.image_size)
        _check(self.batch_size >= 1, "--batch-size", ">= 1", self.batch_size)
        _check(self.epochs >= 1, "--epochs", ">= 1", self.epochs)
        _check(self.iterations_per_epoch >= 1, "--iterations-per-epoch", ">= 1", self.iterations_per_epoch)
        _check(self.precision in (*PRECISIONS, "auto"), "--precision", f"auto or one of {PRECISIONS}",
               self.precision)
        _check(self.num_workers >= 0, "--num-workers", ">= 0", self.num_workers)
        _check(self.checkpoint_every >= 0, "--checkpoint-every", ">= 0", self.checkpoint_every)


@dataclass
class EvalConfig:
    """How test sets are read and scored."""

    positive_dist_threshold: float = 25.0
    recall_values: tuple[int, ...] = (1, 5, 10, 20)
    image_size: int | None = None  # None: keep each image's native size
    batch_size: int = 32
    num_workers: int | None = None  # None: auto, as device.resolve_num_workers chooses

    def __post_init__(self) -> None:
        self.recall_values = tuple(self.recall_values)
        _check(self.positive_dist_threshold > 0, "--positive-dist-threshold", "> 0 metres",
               self.positive_dist_threshold)
        _check(len(self.recall_values) > 0 and all(n >= 1 for n in self.recall_values), "--recall-values",
               "positive integers", self.recall_values)
        _check(self.image_size is None or self.image_size >= 16, "--eval-image-size", ">= 16 or native",
               self.image_size)
        _check(self.batch_size >= 1, "--eval-batch-size", ">= 1", self.batch_size)
        _check(self.num_workers is None or self.num_workers >= 0, "--eval-num-workers", ">= 0 or auto",
               self.num_workers)


@dataclass
class RunConfig:
    """Every option of a training run; written to `config.yaml` in the run folder."""

    train: TrainConfig = field(default_factory=TrainConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["eval"]["recall_values"] = list(self.eval.recall_values)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> RunConfig:
        """Build from nested dicts; unknown groups or keys are errors that name them."""
        groups = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = set(data) - set(groups)
        if unknown:
            raise ConfigError(f"{source}: unknown option group(s) {sorted(unknown)}; known: {sorted(groups)}")
        built = {}
        for name, group_field in ((f.name, f) for f in dataclasses.fields(cls)):
            group_cls = group_field.default_factory
            values = data.get(name) or {}
            known = {f.name for f in dataclasses.fields(group_cls)}
            bad = set(values) - known
            if bad:
                raise ConfigError(f"{source}: unknown option(s) {sorted(bad)} in '{name}'; known: {sorted(known)}")
            built[name] = group_cls(**values)
        return cls(**built)

    def replace(self, overrides: dict[str, Any], source: str = "overrides") -> RunConfig:
        """A copy with `{"group.key": value}` or nested `{"group": {"key": value}}` overrides applied."""
        data = self.to_dict()
        for key, value in overrides.items():
            if isinstance(value, dict) and "." not in key:
                for sub, sub_value in value.items():
                    data.setdefault(key, {})[sub] = sub_value
                continue
            group, _, name = key.partition(".")
            if not name:
                raise ConfigError(f"{source}: option '{key}' must be written as group.name (e.g. optim.lr)")
            data.setdefault(group, {})[name] = value
        return RunConfig.from_dict(data, source)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: configuration file not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({error})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of option groups, got {type(data).__name__}")
        return cls.from_dict(data, str(path))
