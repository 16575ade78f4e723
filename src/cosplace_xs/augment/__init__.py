"""Batch augmentation on the training device, the size training images are read at, and ImageNet normalisation."""

from cosplace_xs.augment.params import AugmentParams, sample_params
from cosplace_xs.augment.pipeline import (
    BatchAugmentation,
    denormalize,
    describe,
    normalize,
    to_float,
    training_read_size,
)

__all__ = ["AugmentParams", "BatchAugmentation", "denormalize", "describe", "normalize", "sample_params", "to_float",
           "training_read_size"]
