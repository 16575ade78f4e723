"""`cosplace-xs demo`: its options fit every city preset it offers, and it runs end to end on the tiny city."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from cosplace_xs.cli import build_parser, main
from cosplace_xs.cli.demo import DEMO_OPTIONS, demo_config, fit_to_city
from cosplace_xs.cli.run_options import run_config_from_args
from cosplace_xs.config import CITY_PRESETS, RunConfig
from cosplace_xs.data import split_cache
from cosplace_xs.data.split import build_split
from cosplace_xs.data.train_set import check_batch_fits
from cosplace_xs.synthetic.city import city_preset, plan_city

README = Path(__file__).parents[1] / "README.md"


def _demo_preset_choices() -> list[str]:
    subparsers = build_parser()._subparsers._group_actions[0]
    demo = subparsers.choices["demo"]
    return next(action.choices for action in demo._actions if action.dest == "preset")


def test_demo_offers_every_city_preset() -> None:
    assert list(_demo_preset_choices()) == ["tiny", "small", "medium", "large"] == list(CITY_PRESETS)


@pytest.mark.parametrize("preset", CITY_PRESETS)
def test_the_demo_options_fit_each_preset_city(preset: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The split of the preset's planned training pictures (their names only: no drawing, no file) takes the
    demo's groups and batch size as training checks them."""
    _, shots = plan_city(city_preset(preset))
    train_dir = tmp_path / "city" / "train"
    images = [tmp_path / "city" / shot.path for shot in shots["train"]]
    # the cache key reads each file's size and time; these pictures are never written
    monkeypatch.setattr(split_cache, "cache_key",
                        lambda config, relative, paths: split_cache.split_key(config, relative))
    config = RunConfig().replace(DEMO_OPTIONS, "demo")
    split = build_split(train_dir, config.split, tmp_path / "cache", images=images)
    fitted = RunConfig().replace(fit_to_city(split), "demo")
    split.check_groups_num(fitted.split.groups_num)
    check_batch_fits(split, fitted.split.groups_num, fitted.train.batch_size)
    expected = {"tiny": (10, 12)}.get(preset, (10, 32))  # the tiny city has 12 classes a group; the others, more
    assert (fitted.split.groups_num, fitted.train.batch_size) == expected


def test_demo_config_on_the_tiny_city(tiny_city: Path, tmp_path: Path) -> None:
    config = demo_config(tiny_city, {"train.epochs": 2, "train.iterations_per_epoch": 3}, tmp_path / "cache")
    assert (config.train.dataset, config.train.epochs, config.train.iterations_per_epoch) == (str(tiny_city), 2, 3)
    assert (config.split.groups_num, config.train.batch_size, config.split.min_images_per_class) == (10, 12, 4)
    assert (config.model.pretrained, config.model.train_all_layers, config.train.image_size) == ("none", True, 64)


def _readme_train_line() -> str:
    lines = [line.strip() for line in README.read_text().splitlines()
             if line.strip().startswith(".venv/bin/cosplace-xs train data/synthetic_city")]
    assert len(lines) == 1, "README holds one `train` line for the synthetic city"
    return lines[0]


def test_the_readme_train_line_fits_the_tiny_city(tiny_city: Path, tmp_path: Path) -> None:
    """README's line, parsed exactly as written, trains on the tiny city too: its groups and batch fit."""
    argv = shlex.split(_readme_train_line())[1:]
    assert argv[:2] == ["train", "data/synthetic_city"]
    args = build_parser().parse_args(argv)
    config = run_config_from_args(args)
    split = build_split(tiny_city / "train", config.split, tmp_path / "cache")
    split.check_groups_num(config.split.groups_num)
    check_batch_fits(split, config.split.groups_num, config.train.batch_size)
    assert (config.train.image_size, config.train.epochs, config.model.pretrained) == (64, 2, "none")


def test_tiny_demo_end_to_end(tiny_city: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """Two epochs of one batch: the untrained table comes first, the time left after epoch 1, then the table."""
    monkeypatch.setenv("COSPLACE_XS_CACHE", str(tmp_path / "cache"))
    assert main(["demo", "--data", str(tiny_city), "--runs-root", str(tmp_path / "runs"), "--epochs", "2",
                 "--iterations-per-epoch", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    untrained = out.index("untrained ResNet-18 (random weights):\ntest set               queries  R@1 before"
                          f"  R@5 before\n{tiny_city.name}/test             30 ")
    training = out.index(": 2 epochs x 1 batches x 12 images, 10 groups (")
    final = out.index("test set               queries  R@1 before  R@1 after  R@5 before  R@5 after\n")
    assert untrained < training < final
    assert "1 of 2 epochs done: about" in caplog.text
    assert "train images: " in caplog.text and "groups of the split" not in caplog.text  # the table is for -v
    run_dir = next((tmp_path / "runs").iterdir())
    assert {"best.pt", "last.pt", "config.yaml", "metrics.csv"} <= {p.name for p in run_dir.iterdir()}


def test_demo_refuses_an_unknown_preset(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["demo", "--preset", "huge"])
    assert stop.value.code == 2
    assert "argument --preset: invalid choice: 'huge' (choose from 'tiny', 'small', 'medium', 'large')" in \
        capsys.readouterr().err
