"""Recipes: named sets of option values that reproduce a reference, applied under a config file and flags.

Precedence: defaults < recipe < `--config` file < flags given. A recipe is plain data (`{group: {key: value}}`)
so that `config.py` can apply it while building a `RunConfig`; every value still passes the schema's checks.

`official-cosplace`: the defaults of gmberton/CosPlace (parser.py, train.py, datasets/, augmentations.py,
test.py), the code of "Rethinking Visual Geo-localization for Large-Scale Applications" (CVPR 2022).
`sf-xs-paper`: the best settings of "Classification for Retrieval in Image Geolocalization" on SF-XS
(Tables 2-4), and where the paper is silent its code (hesamkh1/CosPlace_XS: train.py and parser.py at 052ca6c,
augmentations.py and eval.py at d28426b). docs/fidelity.md lists every difference from both and the option that
restores each.
"""

from __future__ import annotations

from typing import Any

OFFICIAL_COSPLACE = "official-cosplace"
SF_XS_PAPER = "sf-xs-paper"

RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    OFFICIAL_COSPLACE: {
        # parser.py lines 8-13; the heading class of train_dataset.py line 156: int(heading // alpha * alpha)
        "split": {"M": 10, "alpha": 30, "N": 5, "L": 2, "groups_num": 8, "min_images_per_class": 10,
                  "heading_360": "own_class"},
        # parser.py lines 15, 21, 23
        "model": {"backbone": "resnet18", "fc_output_dim": 512, "train_all_layers": False},
        # parser.py lines 26 (--use_amp16 off: fp32), 31-33, 36, 60; train_dataset.py lines 88-93 (the stored
        # image is cropped, never resized first); dataset_utils.py line 43 (glob "*.jpg", case-sensitive)
        "train": {"precision": "fp32", "batch_size": 32, "epochs": 50, "iterations_per_epoch": 10_000,
                  "image_size": 512, "seed": 0, "resize_before_crop": False, "image_extensions": (".jpg",),
                  "extensions_case_sensitive": True},
        # train.py lines 46 and 53: Adam without weight decay for the model and the classifiers
        "optim": {"optimizer": "adam", "lr": 1e-5, "weight_decay": 0.0, "classifiers_lr": 1e-2,
                  "classifiers_weight_decay": 0.0},
        # cosface_loss.py line 24
        "loss": {"s": 30.0, "m": 0.4},
        # parser.py lines 42-46, train.py lines 86-94, augmentations.py line 26 (antialias=True): ColorJitter
        # then RandomResizedCrop(scale [1 - 0.5, 1]) then normalisation, nothing else
        "augment": {"color_jitter": True, "brightness": 0.7, "contrast": 0.7, "saturation": 0.7, "hue": 0.5,
                    "jitter_order": "random", "random_resized_crop": True, "crop_scale_min": 0.5, "crop_scale_max": 1.0,
                    "crop_method": "resized_crop", "rotation": False, "cutout": False, "gaussian_noise": False,
                    "horizontal_flip": False, "vertical_flip": False},
        # parser.py lines 38 (--resize_test_imgs off: native size) and 50; test.py line 16; train.py line 61
        # (the test set's queries are queries_v1)
        "eval": {"native_size": True, "image_size": None, "positive_dist_threshold": 25.0,
                 "recall_values": (1, 5, 10, 20), "queries_folder": "queries_v1"},
    },
    SF_XS_PAPER: {
        # Table 2: ResNet-18, D = 512 while tuning; CosPlace's split (the paper keeps its defaults)
        "split": {"M": 10, "alpha": 30, "N": 5, "L": 2, "groups_num": 8, "min_images_per_class": 10},
        # Table 4: VGG16 is the best backbone (R@1 41.2 on SF-XS); the paper does not give its descriptor size,
        # so the size of its Tables 2 and 3 (512) is kept
        "model": {"backbone": "vgg16", "fc_output_dim": 512},
        # Table 4: 10 epochs; CosPlace's batch and epoch length. The paper does not state the training size; its
        # code (hesamkh1/CosPlace_XS, train.py) crops SF-XS's 224-px images as stored with
        # RandomResizedCrop(size=(512, 512)), so the model trains on 512-px crops
        "train": {"image_size": 512, "batch_size": 32, "epochs": 10, "iterations_per_epoch": 10_000,
                  "resize_before_crop": False},
        # Table 3: Adam, lr 1e-5, weight decay 1e-3; classifiers at lr 1e-3. Its text gives classifiers_wd 0.001
        # as a default, but its code builds the classifiers' Adam without weight decay (train.py), so none
        "optim": {"optimizer": "adam", "lr": 1e-5, "weight_decay": 1e-3, "classifiers_lr": 1e-3,
                  "classifiers_weight_decay": 0.0},
        # Table 2's winner: Rotation(-10, 10), Cutout(16, 0.5), ColorJitter(0.8, 0.3, 0.7, 0.0); no noise or flips.
        # Its code applies them with torchvision per image (augmentations.py): ColorJitter's random order, then
        # the antialiased RandomResizedCrop
        "augment": {"color_jitter": True, "brightness": 0.8, "contrast": 0.3, "saturation": 0.7, "hue": 0.0,
                    "jitter_order": "random", "random_resized_crop": True, "crop_scale_min": 0.5,
                    "crop_scale_max": 1.0, "crop_method": "resized_crop", "rotation": True, "rotation_degrees": 10.0,
                    "cutout": True, "cutout_size": 16, "cutout_p": 0.5, "gaussian_noise": False,
                    "horizontal_flip": False, "vertical_flip": False},
        # its TestDataset takes no resize argument (eval.py, train.py): test images at their own size
        "eval": {"native_size": True, "image_size": None, "positive_dist_threshold": 25.0,
                 "recall_values": (1, 5, 10, 20)},
    },
}
RECIPE_NAMES = tuple(RECIPES)


def recipe_values(name: str | None) -> dict[str, dict[str, Any]]:
    """The option values of recipe `name` as `{group: {key: value}}` (a copy); none for no recipe."""
    if name is None:
        return {}
    return {group: dict(values) for group, values in RECIPES[name].items()}
