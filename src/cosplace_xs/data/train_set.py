"""Training batches of one CosPlace group: `batch_size` distinct classes, one random image of each."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from cosplace_xs import seeding
from cosplace_xs.config import MAX_IMAGE_PIXELS, SplitConfig, TrainConfig
from cosplace_xs.data.images import read_image
from cosplace_xs.data.split import Group, TrainSplit
from cosplace_xs.errors import ConfigError
from cosplace_xs.options import flag_of, no_flag_of


def check_batch_fits(split: TrainSplit, groups_num: int, batch_size: int) -> None:
    """Every group used must hold at least `batch_size` classes (the official code dies with StopIteration)."""
    for index in range(groups_num):
        group = split.group(index)
        classes = len(group.class_ids)
        if classes < batch_size:
            flag = flag_of(TrainConfig, "batch_size")
            raise ConfigError(
                f"option {flag}={batch_size} is larger than the {classes} class{'es' if classes > 1 else ''} "
                f"of group {index} (group id {group.group_id}); a batch holds distinct classes, so use {flag} "
                f"<= {classes}, fewer groups ({flag_of(SplitConfig, 'groups_num')}), or more classes per group "
                f"(lower {flag_of(SplitConfig, 'min_images_per_class')}, or smaller {flag_of(SplitConfig, 'N')} / "
                f"{flag_of(SplitConfig, 'L')})"
            )


def check_one_size(images: list[torch.Tensor], paths: list[Path]) -> None:
    """Images cropped as stored (--no-resize-before-crop) must share one size to form a batch."""
    if len({tuple(image.shape[-2:]) for image in images}) > 1:
        flag = no_flag_of(TrainConfig, "resize_before_crop")
        shown = ", ".join(f"{path} ({image.shape[-1]} x {image.shape[-2]})"
                          for path, image in zip(paths, images, strict=True))
        raise ConfigError(f"option {flag} crops the training images as stored, but one batch holds images of "
                          f"different sizes: {shown}; resize the images to one size, or drop {flag}")


class GroupBatches(Dataset):
    """Item `i` is batch `i` of an epoch: the classes come from a seeded shuffle of the group's classes
    (drop_last, reshuffled each time they run out), one seeded random image per class."""

    def __init__(self, split: TrainSplit, group: Group, batch_size: int, image_size: int | None, seed: int,
                 epoch: int, part: slice = slice(None), max_pixels: int = MAX_IMAGE_PIXELS) -> None:
        if len(group.class_ids) < batch_size:
            raise ConfigError(f"{flag_of(TrainConfig, 'batch_size')}={batch_size} exceeds the "
                              f"{len(group.class_ids)} classes of the group")
        self.paths = split.image_paths
        self.group = group
        self.batch_size = batch_size
        self.image_size = image_size
        self.seed = seed
        self.epoch = epoch
        self.part = part  # this process's share of each batch under distributed training
        self.max_pixels = max_pixels
        self.batches_per_pass = len(group.class_ids) // batch_size

    def classes_of_batch(self, iteration: int) -> torch.Tensor:
        """Class indices (within the group) of batch `iteration`."""
        shuffle, position = divmod(iteration, self.batches_per_pass)
        order = torch.randperm(len(self.group.class_ids),
                               generator=seeding.generator(self.seed, self.epoch, shuffle, seeding.CLASS_ORDER))
        return order[position * self.batch_size:(position + 1) * self.batch_size]

    def __getitem__(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        classes = self.classes_of_batch(iteration)
        rng = seeding.generator(self.seed, self.epoch, iteration, seeding.DATA)
        picks = torch.rand(len(classes), generator=rng)
        classes, picks = classes[self.part], picks[self.part]
        images, paths = [], []
        for class_index, pick in zip(classes.tolist(), picks.tolist(), strict=True):
            members = self.group.class_images[class_index]
            paths.append(self.paths[members[int(pick * len(members))]])
            images.append(read_image(paths[-1], self.image_size, self.max_pixels))
        if self.image_size is None:
            check_one_size(images, paths)
        return torch.stack(images), classes
