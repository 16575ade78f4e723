"""Recipes: each resolves to its source's values; precedence defaults < recipe < --config file < flags."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cosplace_xs.cli.run_options import add_run_arguments, run_config_from_args
from cosplace_xs.config import RunConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.recipes import OFFICIAL_COSPLACE, RECIPES, SF_XS_PAPER

# gmberton/CosPlace at 33ce8d0, file:line of each default, written out here rather than read from recipes.py
OFFICIAL = {
    ("split", "M"): 10,  # parser.py:8
    ("split", "alpha"): 30,  # parser.py:9
    ("split", "N"): 5,  # parser.py:10
    ("split", "L"): 2,  # parser.py:11
    ("split", "groups_num"): 8,  # parser.py:12
    ("split", "min_images_per_class"): 10,  # parser.py:13
    ("split", "heading_360"): "own_class",  # datasets/train_dataset.py:156 int(heading // alpha * alpha)
    ("model", "backbone"): "resnet18",  # parser.py:15 "ResNet18"
    ("model", "fc_output_dim"): 512,  # parser.py:21
    ("model", "train_all_layers"): False,  # parser.py:23
    ("train", "precision"): "fp32",  # parser.py:26 --use_amp16 store_true; train.py:126
    ("train", "batch_size"): 32,  # parser.py:31
    ("train", "epochs"): 50,  # parser.py:32 --epochs_num
    ("train", "iterations_per_epoch"): 10_000,  # parser.py:33
    ("train", "image_size"): 512,  # parser.py:36
    ("train", "seed"): 0,  # parser.py:60
    ("train", "resize_before_crop"): False,  # datasets/train_dataset.py:88-93 (to_tensor only)
    ("train", "image_extensions"): (".jpg",),  # datasets/dataset_utils.py:43 glob "**/*.jpg"
    ("train", "extensions_case_sensitive"): True,  # glob on Linux matches case
    ("optim", "optimizer"): "adam",  # train.py:46, 53
    ("optim", "lr"): 1e-5,  # parser.py:34
    ("optim", "classifiers_lr"): 1e-2,  # parser.py:35
    ("optim", "weight_decay"): 0.0,  # train.py:46 (no weight_decay)
    ("optim", "classifiers_weight_decay"): 0.0,  # train.py:53
    ("loss", "s"): 30.0,  # cosface_loss.py:24
    ("loss", "m"): 0.4,  # cosface_loss.py:24
    ("augment", "brightness"): 0.7,  # parser.py:42
    ("augment", "contrast"): 0.7,  # parser.py:43
    ("augment", "hue"): 0.5,  # parser.py:44
    ("augment", "jitter_order"): "random",  # augmentations.py: T.ColorJitter shuffles its four ops per image
    ("augment", "saturation"): 0.7,  # parser.py:45
    ("augment", "crop_scale_min"): 0.5,  # parser.py:46 and train.py:92: scale=[1 - 0.5, 1]
    ("augment", "crop_scale_max"): 1.0,  # train.py:92
    ("augment", "crop_method"): "resized_crop",  # augmentations.py:26 T.RandomResizedCrop(antialias=True)
    ("augment", "rotation"): False,  # train.py:86-94: jitter, crop, normalise, nothing else
    ("augment", "cutout"): False,
    ("augment", "gaussian_noise"): False,
    ("augment", "horizontal_flip"): False,
    ("augment", "vertical_flip"): False,
    ("eval", "native_size"): True,  # parser.py:38 --resize_test_imgs off; datasets/test_dataset.py:41
    ("eval", "image_size"): None,
    ("eval", "positive_dist_threshold"): 25.0,  # parser.py:50
    ("eval", "recall_values"): (1, 5, 10, 20),  # test.py:16
    ("eval", "queries_folder"): "queries_v1",  # train.py:61
}

# "Classification for Retrieval in Image Geolocalization" (SF-XS), its best settings; where the paper is silent,
# its code: hesamkh1/CosPlace_XS at 052ca6c (train.py, parser.py), d28426b (augmentations.py, eval.py)
SF_XS = {
    ("train", "image_size"): 512,  # train.py: DeviceAgnosticRandomResizedCrop(size=(512, 512), ...)
    ("train", "resize_before_crop"): False,  # datasets/train_dataset.py: to_tensor of the stored image only
    ("train", "epochs"): 10,  # Table 4: "final result with 10 epochs"
    ("model", "backbone"): "vgg16",  # Table 4: VGG16 R@1 41.2, the best
    ("augment", "brightness"): 0.8,  # Table 2, last row
    ("augment", "contrast"): 0.3,
    ("augment", "saturation"): 0.7,
    ("augment", "hue"): 0.0,
    ("augment", "jitter_order"): "random",  # augmentations.py: T.ColorJitter's forward, per image
    ("augment", "crop_method"): "resized_crop",  # augmentations.py: T.RandomResizedCrop's forward, per image
    ("augment", "rotation"): True,  # Table 2: Rotation(-10, 10)
    ("augment", "rotation_degrees"): 10.0,
    ("augment", "cutout"): True,  # Table 2: Cutout(16, 0.5, 0)
    ("augment", "cutout_size"): 16,
    ("augment", "cutout_p"): 0.5,
    ("optim", "optimizer"): "adam",  # Table 3: Adam, lr 1e-5, weight decay 1e-3
    ("optim", "lr"): 1e-5,
    ("optim", "weight_decay"): 1e-3,
    ("optim", "classifiers_lr"): 1e-3,  # its text: classifiers_lr 0.001
    ("optim", "classifiers_weight_decay"): 0.0,  # train.py: Adam(classifier.parameters(), lr=...) (the text's
    # classifiers_wd 0.001 is a parser default that only the commented-out AdamW and ASGD would read)
    ("eval", "native_size"): True,  # eval.py, train.py: TestDataset(folder, queries_folder, threshold), no resize
}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    return parser.parse_args(argv)


def _values(config: RunConfig, keys: dict[tuple[str, str], object]) -> dict[tuple[str, str], object]:
    return {(group, name): getattr(getattr(config, group), name) for group, name in keys}


@pytest.mark.parametrize(("recipe", "expected"), [(OFFICIAL_COSPLACE, OFFICIAL), (SF_XS_PAPER, SF_XS)])
def test_a_recipe_resolves_to_its_sources_values(recipe: str, expected: dict) -> None:
    config = run_config_from_args(_parse(["--recipe", recipe]))
    assert _values(config, expected) == expected
    assert config.train.recipe == recipe


def test_every_recipe_key_is_an_option() -> None:
    for name in RECIPES:
        RunConfig.from_dict({"train": {"recipe": name}}, "test")  # unknown keys would raise


def test_flags_win_over_the_recipe() -> None:
    config = run_config_from_args(_parse(["--recipe", OFFICIAL_COSPLACE, "--epochs", "3", "--image-size", "64",
                                          "--crop-method", "warp"]))
    assert (config.train.epochs, config.train.image_size, config.augment.crop_method) == (3, 64, "warp")
    assert config.augment.brightness == 0.7 and config.train.precision == "fp32"  # the rest stays the recipe's


def test_a_config_file_sits_between_the_recipe_and_the_flags(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("recipe: official-cosplace\ntrain: {epochs: 7, batch_size: 4}\n")
    config = run_config_from_args(_parse(["--config", str(tmp_path / "c.yaml"), "--batch-size", "2"]))
    assert (config.train.recipe, config.train.epochs, config.train.batch_size) == (OFFICIAL_COSPLACE, 7, 2)
    assert config.train.image_size == 512  # the recipe's, under the file


def test_a_recipe_flag_goes_under_the_files_values(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("train: {epochs: 7}\naugment: {hue: 0.1}\n")
    config = run_config_from_args(_parse(["--config", str(tmp_path / "c.yaml"), "--recipe", SF_XS_PAPER]))
    assert (config.train.epochs, config.augment.hue, config.model.backbone) == (7, 0.1, "vgg16")


def test_switching_recipes_keeps_only_the_values_chosen_over_the_first() -> None:
    official = RunConfig().replace({"train.recipe": OFFICIAL_COSPLACE, "optim.lr": 0.5})
    paper = official.replace({"train.recipe": SF_XS_PAPER})
    assert (paper.optim.lr, paper.train.image_size, paper.eval.queries_folder) == (0.5, 512, None)


def test_the_run_config_records_the_recipe_and_the_resolved_values(tmp_path: Path) -> None:
    config = RunConfig().replace({"recipe": OFFICIAL_COSPLACE})
    config.save(tmp_path / "config.yaml")
    text = (tmp_path / "config.yaml").read_text()
    assert "recipe: official-cosplace" in text and "crop_method: resized_crop" in text
    assert RunConfig.load(tmp_path / "config.yaml", complete=True) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("recipe: cosplace\n", "option train.recipe='cosplace' is out of range: one of official-cosplace, sf-xs-paper"),
        ("recipe: sf-xs-paper\ntrain: {recipe: sf-xs-paper}\n",
         "the recipe is named twice ('recipe' and 'train.recipe'); keep one"),
    ],
)
def test_a_bad_recipe_in_a_file_names_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        RunConfig.load(tmp_path / "c.yaml")
    assert str(caught.value) == f"{tmp_path / 'c.yaml'}: {message}"


def test_native_size_evaluation_as_the_official_code_without_resize_test_imgs() -> None:
    from cosplace_xs.evaluation.inference import NATIVE, eval_image_size

    assert eval_image_size(RunConfig()) == 224  # ours: the training size
    assert eval_image_size(RunConfig().replace({"eval.native_size": True})) is NATIVE
    with pytest.raises(ConfigError) as caught:
        RunConfig().replace({"eval.native_size": True, "eval.image_size": 64}, "command line")
    assert str(caught.value) == ("option --eval-image-size/--eval-native-size=64,True is out of range: give one "
                                 "of them, not both")


def test_shorter_side_evaluation_as_the_official_code_with_resize_test_imgs(tmp_path: Path) -> None:
    """test_dataset.py:43: T.Resize(image_size) on the shorter side, aspect kept; eval reads images that way."""
    from helpers import INFERENCE_FLAGS, run_command, write_test_set, write_tiny_checkpoint

    from cosplace_xs.cli import eval as eval_command
    from cosplace_xs.evaluation.inference import ShorterSide, eval_image_size

    assert eval_image_size(RunConfig().replace({"eval.shorter_side": True})) == ShorterSide(224)
    street = write_test_set(tmp_path / "street", [(0.0, 0.0), (40.0, 0.0)], [(1.0, 0.0)], size=24)
    write_tiny_checkpoint(tmp_path / "model.pt")
    assert run_command(eval_command, ["eval", "--checkpoint", str(tmp_path / "model.pt"), "--shorter-side",
                                      "--image-size", "20", *INFERENCE_FLAGS, "--out", str(tmp_path / "out"),
                                      str(street)]) == 0
    settings = json.loads(next((tmp_path / "out").glob("eval-*.json")).read_text())
    assert settings["image_size"] == "shorter side 20"


def test_cropping_as_stored_needs_one_size_per_batch() -> None:
    import torch

    from cosplace_xs.data.train_set import check_one_size

    check_one_size([torch.zeros(3, 8, 8), torch.zeros(3, 8, 8)], [Path("a.jpg"), Path("b.jpg")])
    with pytest.raises(ConfigError) as caught:
        check_one_size([torch.zeros(3, 8, 8), torch.zeros(3, 6, 10)], [Path("a.jpg"), Path("b.jpg")])
    assert str(caught.value) == ("option --no-resize-before-crop crops the training images as stored, but one batch "
                                 "holds images of different sizes: a.jpg (8 x 8), b.jpg (10 x 6); resize the images "
                                 "to one size, or drop --no-resize-before-crop")


def test_a_tiny_run_of_the_official_recipe_trains_crops_as_stored_and_records_it(tiny_city: Path, tmp_path: Path,
                                                                                 monkeypatch) -> None:
    from cosplace_xs.training.loop import train

    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))
    config = RunConfig().replace({"train.recipe": OFFICIAL_COSPLACE}).replace({
        "train.dataset": str(tiny_city), "train.image_size": 32, "train.batch_size": 4, "train.epochs": 1,
        "train.iterations_per_epoch": 2, "train.num_workers": 0, "split.min_images_per_class": 2,
        "split.groups_num": 1, "model.pretrained": "none", "model.fc_output_dim": 16, "eval.batch_size": 16,
        "eval.num_workers": 0, "train.device": "cpu"})
    assert (config.train.resize_before_crop, config.augment.crop_method, config.eval.native_size) == (
        False, "resized_crop", True)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = train(config, run_dir, progress=False)
    assert 0 <= result.best_r1 <= 100
    assert RunConfig.load(run_dir / "config.yaml", complete=True) == config
