"""Sweep specs: parsing, grids and labels, the order options apply in, and errors that name their line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cosplace_xs.errors import ConfigError
from cosplace_xs.sweep.labels import settings_label, slugify
from cosplace_xs.sweep.spec import Metric, load_spec

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"

VALID = """\
name: demo
dataset: data/city
test_sets: {sf_xs: test, tokyo_xs: ../tokyo_xs/test}
base:
  train: {image_size: 64, iterations_per_epoch: 20}
  optim.lr: 1e-5
stages:
  - name: rotation
    epochs: 1
    overrides: {augment.rotation: true}
    trials:
      - {label: "Rotation(-15,15)", augment.rotation_degrees: 15}
      - {label: "Rotation(-10,10)", augment.rotation_degrees: 10}
    paper:
      "Rotation(-10,10)": {sf_xs: {R@1: 19.1, R@5: 32.1}}
  - name: optim
    inherit: previous
    metric: val:R@5
    grid:
      optim.optimizer: [adam, adamw]
      optim.lr: [1e-5, 0.001]
"""


def write_spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_valid_spec_reads_with_typed_settings_grid_order_and_labels(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, VALID))
    assert spec.name == "demo" and spec.dataset == "data/city"
    assert spec.test_set_path("tokyo_xs") == Path("data/city/../tokyo_xs/test")
    assert spec.base == {"train.image_size": 64, "train.iterations_per_epoch": 20, "optim.lr": 1e-5}
    rotation, optim = spec.stages
    assert [t.label for t in rotation.trials] == ["Rotation(-15,15)", "Rotation(-10,10)"]
    assert [t.slug for t in rotation.trials] == ["rotation-15-15", "rotation-10-10"]
    assert rotation.trials[0].settings == {"augment.rotation_degrees": 15.0}
    assert rotation.overrides == {"augment.rotation": True, "train.epochs": 1}
    assert rotation.metric == Metric("sf_xs", 1)  # default: the first test set's R@1
    assert rotation.paper == {"Rotation(-10,10)": {"sf_xs": {"R@1": 19.1, "R@5": 32.1}}}
    assert optim.inherit == "rotation" and optim.metric == Metric("val", 5)
    # cartesian product, last option fastest; "1e-5" (a string to YAML 1.1) is read as a number
    assert [t.settings for t in optim.trials] == [
        {"optim.optimizer": "adam", "optim.lr": 1e-5}, {"optim.optimizer": "adam", "optim.lr": 0.001},
        {"optim.optimizer": "adamw", "optim.lr": 1e-5}, {"optim.optimizer": "adamw", "optim.lr": 0.001}]
    assert [t.label for t in optim.trials][:2] == ["optimizer=adam, lr=1e-05", "optimizer=adam, lr=0.001"]
    assert optim.varied == ("optim.optimizer", "optim.lr")


def test_options_apply_base_then_inherited_then_stage_then_trial(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, VALID)).with_dataset("/data/sf_xs")
    rotation, optim = spec.stages
    inherited = {"augment.rotation_degrees": 10.0, "optim.lr": 0.5, "train.epochs": 3, "train.image_size": 48}
    config = spec.trial_config(optim, optim.trials[1], inherited)
    assert config.train.dataset == "/data/sf_xs"
    assert config.train.image_size == 48  # inherited beats base
    assert config.train.epochs == 3  # the optim stage sets no epochs: the winner's stay
    assert config.optim.lr == 0.001  # the trial's own setting beats the inherited one
    assert config.augment.rotation_degrees == 10.0
    assert spec.trial_config(rotation, rotation.trials[0], {"train.epochs": 7}).train.epochs == 1  # stage beats


def test_seeds_set_train_seed_last_and_default_to_one_run(tmp_path: Path) -> None:
    assert load_spec(write_spec(tmp_path, VALID)).seeds == ()
    spec = load_spec(write_spec(tmp_path, VALID.replace("stages:", "seeds: [0, 1, 2]\nstages:", 1)))
    assert spec.seeds == (0, 1, 2)
    rotation = spec.stages[0]
    trial = rotation.trials[0]
    assert spec.trial_config(rotation, trial, {"train.seed": 7}, seed=2).train.seed == 2
    assert spec.trial_config(rotation, trial, {"train.seed": 7}).train.seed == 7


def test_labels_and_folder_names() -> None:
    assert settings_label({"optim.optimizer": "asgd", "optim.lr": 1e-3}) == "optimizer=asgd, lr=0.001"
    assert settings_label({"train.batch_size": 8, "eval.batch_size": 4}) == "train.batch_size=8, eval.batch_size=4"
    assert settings_label({}) == "base"
    assert slugify("Cutout(16,0.5,0)") == "cutout-16-0p5-0"
    assert slugify("ColorJitter (brightness=0.8 , hue=0.0)") == "colorjitter-brightness-0p8-hue-0p0"


def _line_of(text: str, marker: str = "# <-") -> int:
    return next(i for i, line in enumerate(textwrap.dedent(text).splitlines(), start=1) if marker in line)


HEAD = """\
dataset: data/city
test_sets: {sf_xs: test}
stages:
"""

INVALID = {
    "unknown option": (HEAD + """\
  - name: a
    grid:
      augment.rotaton_degrees: [10, 15]  # <-
""", "unknown option 'augment.rotaton_degrees'; did you mean 'augment.rotation_degrees'"),
    "unknown option in base": ("""\
dataset: data/city
test_sets: {sf_xs: test}
base:
  model:
    backbone: resnet18
    dim: 512  # <-
stages:
  - {name: a, trials: [{label: x}]}
""", "unknown option 'model.dim'"),
    "a seed twice": ("""\
dataset: data/city
test_sets: {sf_xs: test}
seeds: [0, 1, 0]  # <-
stages:
  - {name: a, trials: [{label: x}]}
""", "`seeds:` lists a seed twice ([0, 1, 0]); each seed runs once"),
    "seeds not a list": ("""\
dataset: data/city
test_sets: {sf_xs: test}
seeds: 3  # <-
stages:
  - {name: a, trials: [{label: x}]}
""", "`seeds:` must be a non-empty list of seeds, e.g. [0, 1, 2], got 3"),
    "empty grid list": (HEAD + """\
  - name: a
    grid:
      augment.rotation_degrees: []  # <-
""", "empty grid"),
    "empty grid mapping": (HEAD + """\
  - name: a
    grid: {}  # <-
""", "empty grid"),
    "empty trials": (HEAD + """\
  - name: a
    trials: []  # <-
""", "empty trials"),
    "first stage inherits": (HEAD + """\
  - name: a
    inherit: previous  # <-
    trials: [{label: x}]
""", "stage 'a' is the first stage"),
    "inherits a later stage": (HEAD + """\
  - name: a
    inherit: b  # <-
    trials: [{label: x}]
  - name: b
    trials: [{label: x}]
""", "not an earlier stage"),
    "unknown test set in metric": (HEAD + """\
  - name: a
    metric: tokyo:R@1  # <-
    trials: [{label: x}]
""", "unknown test set 'tokyo'"),
    "bad metric": (HEAD + """\
  - name: a
    metric: recall@1  # <-
    trials: [{label: x}]
""", "must read SET:R@N"),
    "recall not measured": (HEAD + """\
  - name: a
    metric: sf_xs:R@3
    trials:
      - {label: x}  # <-
""", "measures only R@N for N in [1, 5, 10, 20]"),
    "duplicate stage names": (HEAD + """\
  - name: a
    trials: [{label: x}]
  - name: a  # <-
    trials: [{label: y}]
""", "two stages are named 'a'"),
    "out of range": (HEAD + """\
  - name: a
    trials:
      - {label: x}
      - {label: y, augment.rotation_degrees: 200}  # <-
""", "option augment.rotation_degrees=200 is out of range: [0, 180]"),
    "wrong type": (HEAD + """\
  - name: a
    grid:
      train.epochs: [1, two]  # <-
""", "option train.epochs='two' is not a number, expected an integer"),
    "two trials, one folder": (HEAD + """\
  - name: a
    trials:
      - {label: "lr 0.1", optim.lr: 0.1}
      - {label: "LR 0.1", optim.lr: 0.2}  # <-
""", "would share the folder 'lr-0p1'"),
    "unknown stage key": (HEAD + """\
  - name: a
    trails: [{label: x}]  # <-
""", "unknown key 'trails'"),
    "grid and trials": (HEAD + """\
  - name: a  # <-
    grid: {optim.lr: [0.1]}
    trials: [{label: x}]
""", "either `grid:`"),
    "paper row unknown": (HEAD + """\
  - name: a
    trials: [{label: x}]
    paper:
      y: {sf_xs: {R@1: 1.0}}  # <-
""", "paper figures for 'y'"),
    "dataset in options": ("""\
dataset: data/city
test_sets: {sf_xs: test}
base:
  train.dataset: other  # <-
stages:
  - {name: a, trials: [{label: x}]}
""", "top-level `dataset:`"),
    "test set named val": ("""\
dataset: data/city
test_sets:
  val: val  # <-
stages:
  - {name: a, trials: [{label: x}]}
""", "'val' names the validation set"),
    "key twice": (HEAD + """\
  - name: a
    trials: [{label: x}]
    metric: sf_xs:R@1
    metric: sf_xs:R@5  # <-
""", "key 'metric' appears twice"),
    "val metric without validation": (HEAD + """\
  - name: a
    metric: val:R@1
    trials:
      - {label: x, train.validate: false}  # <-
""", "needs validation"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_specs_name_the_line_and_the_problem(tmp_path: Path, case: str) -> None:
    text, message = INVALID[case]
    path = write_spec(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_spec(path)
    assert f"{path}:{_line_of(text)}:" in str(caught.value)
    assert message in str(caught.value)


def test_missing_top_level_keys_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs `stages:`"):
        load_spec(write_spec(tmp_path, "dataset: d\ntest_sets: {t: test}\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_spec(write_spec(tmp_path, "dataset: [unclosed\n"))
    with pytest.raises(ConfigError, match="file not found"):
        load_spec(tmp_path / "absent.yaml")


def test_the_paper_specs_hold_the_papers_settings_and_figures() -> None:
    table2 = load_spec(EXPERIMENTS / "paper_table2_augmentation.yaml")
    assert [s.name for s in table2.stages] == ["rotation", "cutout", "color_jitter"]
    assert [len(s.trials) for s in table2.stages] == [4, 4, 3]
    assert [s.inherit for s in table2.stages] == [None, "rotation", "cutout"]
    assert all(set(s.paper) == {t.label for t in s.trials} for s in table2.stages)
    assert [t.settings["augment.rotation_degrees"] for t in table2.stages[0].trials] == [15, 45, 25, 10]
    best = table2.trial_config(table2.stages[2], table2.stages[2].trials[2], {})
    assert (best.augment.brightness, best.augment.contrast, best.augment.saturation, best.augment.hue) == (
        0.8, 0.3, 0.7, 0.0)
    assert (best.train.image_size, best.train.iterations_per_epoch, best.train.epochs) == (224, 10_000, 1)
    assert table2.stages[2].paper["ColorJitter(0.8,0.3,0.7,0.0)"]["tokyo_xs"] == {"R@1": 36.2, "R@5": 59.0}

    table3 = load_spec(EXPERIMENTS / "paper_table3_optimizer.yaml")
    (optimizer,) = table3.stages
    configs = [table3.trial_config(optimizer, t, {}) for t in optimizer.trials]
    assert [(c.optim.optimizer, c.optim.lr) for c in configs] == [
        ("adam", 1e-5), ("adam", 1e-3), ("adamw", 1e-5), ("adamw", 1e-3), ("asgd", 1e-5), ("asgd", 1e-3)]
    assert {(c.optim.weight_decay, c.train.epochs) for c in configs} == {(1e-3, 5)}
    assert optimizer.paper["Adam, lr 1e-05"] == {"sf_xs": {"R@1": 30.3}}

    table4 = load_spec(EXPERIMENTS / "paper_table4_backbones.yaml")
    (backbones,) = table4.stages
    assert len(backbones.trials) == 12 and backbones.varied == ("model.backbone", "model.fc_output_dim")
    assert set(backbones.paper) == {"resnet18", "resnet50", "vgg16"}
    assert table4.trial_config(backbones, backbones.trials[0], {}).train.epochs == 10


@pytest.mark.parametrize("path", sorted((EXPERIMENTS / "synthetic").glob("*.yaml")), ids=lambda p: p.stem)
def test_the_synthetic_specs_read_and_use_the_synthetic_city(path: Path) -> None:
    spec = load_spec(path)
    assert spec.dataset == "data/synthetic_city"
    for stage in spec.stages:
        config = spec.trial_config(stage, stage.trials[0], {})
        assert config.model.pretrained == "none" and config.train.image_size <= 96
