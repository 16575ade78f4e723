"""Flags generated from RunConfig: names users know, precedence defaults < --config < flags."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cosplace_xs.cli.run_options import add_run_arguments, run_config_from_args
from cosplace_xs.config import RunConfig


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    return parser.parse_args(argv)


def test_cosplace_flag_names_map_to_their_options() -> None:
    config = run_config_from_args(_parse([
        "--M", "15", "--alpha", "45", "--N", "3", "--L", "1", "--groups-num", "2", "--fc-output-dim", "128",
        "--iterations-per-epoch", "7", "--classifiers-lr", "0.02", "--scale", "20", "--margin", "0.3",
        "--optimizer", "asgd", "--no-rotation", "--horizontal-flip", "--no-pretrained", "--recall-values", "1", "3",
        "--eval-image-size", "64",
    ]))
    assert (config.split.M, config.split.alpha, config.split.N, config.split.L, config.split.groups_num) == (
        15, 45, 3, 1, 2)
    assert config.model.fc_output_dim == 128 and config.model.pretrained == "none"
    assert config.train.iterations_per_epoch == 7 and config.optim.classifiers_lr == 0.02
    assert (config.loss.s, config.loss.m, config.optim.optimizer) == (20.0, 0.3, "asgd")
    assert config.augment.rotation is False and config.augment.horizontal_flip is True
    assert config.eval.recall_values == (1, 3) and config.eval.image_size == 64


def test_config_file_then_flags(tmp_path: Path) -> None:
    RunConfig().replace({"split.alpha": 60, "optim.lr": 0.5}).save(tmp_path / "c.yaml")
    config = run_config_from_args(_parse(["--config", str(tmp_path / "c.yaml"), "--lr", "0.25"]))
    assert config.split.alpha == 60  # from the file, not overwritten by the flag's default
    assert config.optim.lr == 0.25  # the flag given wins over the file
    assert config.split.M == 10  # default


def test_bad_choice_is_rejected_by_the_parser() -> None:
    with pytest.raises(SystemExit):
        _parse(["--optimizer", "lbfgs"])


def test_no_augmentation_then_a_switch_back_on() -> None:
    config = run_config_from_args(_parse(["--no-augmentation", "--cutout", "--cutout-size", "8"]))
    augment = config.augment
    assert augment.cutout and augment.cutout_size == 8
    assert not (augment.color_jitter or augment.random_resized_crop or augment.rotation)


PCA_RECORD = ("model.pca_dim", "model.pca_whiten")  # what `cosplace-xs pca` folded in: no training flag


def test_every_option_of_the_schema_is_a_flag_and_every_flag_an_option() -> None:
    """The parser's flags are exactly the schema's options (plus the few flags that are no option)."""
    import dataclasses

    from cosplace_xs.options import facts, flag_of

    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    by_dest = {action.dest: action for action in parser._actions}
    expected = set()
    for group, group_cls in RunConfig.groups().items():
        for item in dataclasses.fields(group_cls):
            key = f"{group}.{item.name}"
            expected.add(key)
            if not facts(item).command_line:
                assert key in ("train.dataset", "model.pretrained", *PCA_RECORD)
                continue
            action = by_dest[key]
            assert flag_of(group_cls, item.name) in action.option_strings
            assert facts(item).help in action.help and "(default: " in action.help
    assert {dest for dest in by_dest if "." in dest} == expected - {"train.dataset", *PCA_RECORD}


def test_flags_are_coerced_and_checked_by_the_schema() -> None:
    from cosplace_xs.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^option --batch-size=x is not a number, expected an integer$"):
        run_config_from_args(_parse(["--batch-size", "x"]))
    with pytest.raises(ConfigError, match=r"^option --weight-decay=inf must be a finite number$"):
        run_config_from_args(_parse(["--weight-decay", "inf"]))
    with pytest.raises(ConfigError, match=r"^option --image-size=100000 is out of range: 16 to 4096 pixels$"):
        run_config_from_args(_parse(["--image-size", "100000"]))
    with pytest.raises(ConfigError, match=r"^option --device=meta is out of range: auto, cpu, cuda or cuda:N$"):
        run_config_from_args(_parse(["--device", "meta"]))


def _main_error(argv: list[str], capsys) -> str:
    from cosplace_xs.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_no_abbreviations_and_a_did_you_mean_with_the_commands_usage(capsys) -> None:
    err = _main_error(["train", "data", "--epoch", "3"], capsys)
    assert err.startswith("usage: cosplace-xs train ")
    assert "error: unrecognized arguments: --epoch 3 (--epoch: did you mean --epochs?)" in err


def test_the_global_option_and_cosplaces_spellings_are_accepted_after_the_command() -> None:
    from cosplace_xs.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "data", "-v", "--groups_num", "3", "--fc_output_dim", "128", "--epochs_num",
                              "2", "--backbone", "ResNet18", "--batch_size=4"])
    assert args.verbose is True
    config = run_config_from_args(args)
    assert (config.split.groups_num, config.model.fc_output_dim, config.train.epochs) == (3, 128, 2)
    assert (config.model.backbone, config.train.batch_size) == ("resnet18", 4)
    assert parser.parse_args(["-v", "train", "data"]).verbose is True
    assert parser.parse_args(["train", "data"]).verbose is False


def test_an_unknown_backbone_is_refused_by_the_parser(capsys) -> None:
    err = _main_error(["train", "data", "--backbone", "resnet19"], capsys)
    assert "argument --backbone: invalid choice: 'resnet19'" in err
