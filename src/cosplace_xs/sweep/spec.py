"""A sweep spec: the paper's protocol of stages (Tables 2-4), each trying settings and keeping the winner.

"In each step, we choose the best hyperparameter for previous method and implement next method" (Table 2):
a stage with `inherit: previous` starts every trial from the settings of the previous stage's winner.
The format is documented in docs/experiments.md.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosplace_xs.config import RunConfig
from cosplace_xs.errors import ConfigError
from cosplace_xs.options import IN_PLACE
from cosplace_xs.sweep.labels import settings_label, slugify
from cosplace_xs.sweep.located_yaml import LocatedYaml, Where, load_located_yaml
from cosplace_xs.sweep.options import DATASET_OPTION, check_option, flat_options
from cosplace_xs.sweep.paper import parse_paper

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
METRIC = re.compile(r"^(?P<source>[A-Za-z0-9][A-Za-z0-9_.-]*):R@(?P<n>\d+)$")
VAL = "val"
PREVIOUS = "previous"
BACKBONE = "model.backbone"
SEED = "train.seed"
TOP_KEYS = ("name", "description", "dataset", "test_sets", "base", "metric", "seeds", "stages")
STAGE_KEYS = ("name", "description", "grid", "trials", "epochs", "overrides", "metric", "inherit", "paper")


@dataclass(frozen=True)
class Metric:
    """Recall@N on a named test set, or on the validation set (`val`, the best epoch's)."""

    source: str
    n: int

    def __str__(self) -> str:
        return f"{self.source}:R@{self.n}"


@dataclass(frozen=True)
class TrialSpec:
    """One setting to try: its label (a table row), folder name and its own `group.field` options."""

    label: str
    slug: str
    settings: dict[str, Any]


@dataclass(frozen=True)
class StageSpec:
    """A stage: trials, options common to them, the metric that picks the winner, what it inherits."""

    name: str
    description: str
    trials: tuple[TrialSpec, ...]
    overrides: dict[str, Any]
    metric: Metric
    inherit: str | None  # the name of the stage whose winner every trial starts from
    paper: dict[str, dict[str, dict[str, float | None]]]  # label or backbone -> test set -> "R@N" -> figure
    varied: tuple[str, ...]  # the options the trials set

    def trial(self, slug: str) -> TrialSpec:
        return next(trial for trial in self.trials if trial.slug == slug)


@dataclass(frozen=True)
class SweepSpec:
    """A whole sweep: dataset, test sets, base options and the stages in order."""

    name: str
    description: str
    dataset: str
    test_sets: dict[str, str]  # name -> path, relative to the dataset root or absolute
    base: dict[str, Any]
    stages: tuple[StageSpec, ...]
    source_text: str  # the spec file as written, copied into the sweep folder
    seeds: tuple[int, ...] = ()  # each trial runs once per seed (train.seed); none: once, with its own train.seed

    def with_dataset(self, dataset: str | Path) -> SweepSpec:
        return dataclasses.replace(self, dataset=str(dataset))

    def test_set_path(self, name: str) -> Path:
        path = Path(self.test_sets[name]).expanduser()
        return path if path.is_absolute() else Path(self.dataset) / path

    def trial_config(self, stage: StageSpec, trial: TrialSpec, inherited: dict[str, Any],
                     seed: int | None = None) -> RunConfig:
        """base < the inherited winner's settings < the stage's options < the trial's own settings < the seed."""
        options = {**self.base, DATASET_OPTION: self.dataset, **inherited, **stage.overrides, **trial.settings,
                   **({} if seed is None else {SEED: seed})}
        return RunConfig().replace(options, IN_PLACE)


def _mapping(doc: LocatedYaml, where: Where, value: Any, what: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise doc.error(where, f"{what} must be a mapping, got {value!r}")
    for key in value:
        if key not in keys:
            raise doc.error((*where, key), f"unknown key '{key}' in {what}; known: {', '.join(keys)}")
    return value


def _name(doc: LocatedYaml, where: Where, value: Any, what: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise doc.error(where, f"{what} {value!r} must be letters, digits, '_', '-' or '.' (it names a folder)")
    return value


def _metric(doc: LocatedYaml, where: Where, value: Any, test_sets: dict[str, str]) -> Metric:
    match = METRIC.match(value) if isinstance(value, str) else None
    if match is None:
        raise doc.error(where, f"metric {value!r} must read SET:R@N, e.g. {next(iter(test_sets))}:R@1 or val:R@1")
    source = match["source"]
    if source != VAL and source not in test_sets:
        raise doc.error(where, f"metric {value!r} names the unknown test set '{source}'; known: "
                               f"{', '.join([*test_sets, VAL])}")
    return Metric(source, int(match["n"]))


def _grid(doc: LocatedYaml, where: Where, grid: Any) -> list[dict[str, Any]]:
    """The cartesian product of `group.field: [values]`, in the order written (last option fastest)."""
    if not isinstance(grid, dict) or not grid:
        raise doc.error(where, "empty grid: give at least one option with a list of values, "
                               "e.g. augment.rotation_degrees: [10, 15]")
    axes = []
    for key, values in grid.items():
        if not isinstance(key, str) or "." not in key:
            raise doc.error((*where, key), f"grid options are written group.field (e.g. optim.lr), got {key!r}")
        if not isinstance(values, list) or not values:
            raise doc.error((*where, key), f"empty grid: option '{key}' needs a non-empty list of values, "
                                           f"got {values!r}")
        axes.append([(key, check_option(doc, (*where, key, i), key, v)) for i, v in enumerate(values)])
    return [dict(combination) for combination in itertools.product(*axes)]


def _trials(doc: LocatedYaml, where: Where, stage: dict[str, Any]) -> tuple[list[TrialSpec], list[Where]]:
    if ("grid" in stage) == ("trials" in stage):
        raise doc.error(where, "a stage needs either `grid:` (options with lists of values) or `trials:` "
                               "(a list of settings), not both or neither")
    if "grid" in stage:
        settings = _grid(doc, (*where, "grid"), stage["grid"])
        entries = [(settings_label(s), s, (*where, "grid")) for s in settings]
    else:
        items = stage["trials"]
        if not isinstance(items, list) or not items:
            raise doc.error((*where, "trials"), "empty trials: give a list of settings, e.g. "
                                                "- {label: 'Rotation(-10,10)', augment.rotation_degrees: 10}")
        entries = []
        for index, item in enumerate(items):
            item_where = (*where, "trials", index)
            settings = flat_options(doc, item_where, item, "a trial", skip=("label",))
            label = item.get("label", settings_label(settings))
            if not isinstance(label, str) or not label.strip():
                raise doc.error((*item_where, "label"), f"a trial's label must be a non-empty string, got {label!r}")
            entries.append((label.strip(), settings, item_where))
    trials, places, slugs = [], [], {}
    for label, settings, item_where in entries:
        slug = slugify(label)
        if slug in slugs:
            raise doc.error(item_where, f"trials '{slugs[slug]}' and '{label}' would share the folder '{slug}'; "
                                        "give them distinct labels")
        slugs[slug] = label
        trials.append(TrialSpec(label, slug, settings))
        places.append(item_where)
    return trials, places


def _inherit(doc: LocatedYaml, where: Where, value: Any, earlier: list[str], name: str) -> str | None:
    if value is None or value == "none":
        return None
    if value == PREVIOUS:
        if not earlier:
            raise doc.error(where, f"stage '{name}' is the first stage: it has no previous stage to inherit from")
        return earlier[-1]
    if value not in earlier:
        raise doc.error(where, f"stage '{name}' inherits from {value!r}, which is not an earlier stage; use "
                               f"'previous', 'none' or one of: {', '.join(earlier) or '(no earlier stage)'}")
    return value


def _check_trials(doc: LocatedYaml, spec: SweepSpec, stage: StageSpec, places: list[Where]) -> None:
    """Every trial's options are in range, and its metric is one the run will measure."""
    for trial, where in zip(stage.trials, places, strict=True):
        try:
            config = spec.trial_config(stage, trial, {})
        except ConfigError as error:
            raise doc.error(where, f"trial '{trial.label}': {error}") from None
        if stage.metric.n not in config.eval.recall_values:
            raise doc.error(where, f"metric {stage.metric} asks for R@{stage.metric.n}, but trial '{trial.label}' "
                                   f"measures only R@N for N in {list(config.eval.recall_values)} (eval.recall_values)")
        if stage.metric.source == VAL and not config.train.validate:
            raise doc.error(where, f"metric {stage.metric} needs validation, but trial '{trial.label}' has "
                                   "train.validate: false")


def _stage(doc: LocatedYaml, where: Where, value: Any, spec: SweepSpec, default_metric: Metric,
           earlier: list[str]) -> tuple[StageSpec, list[Where]]:
    raw = _mapping(doc, where, value, "a stage", STAGE_KEYS)
    if "name" not in raw:
        raise doc.error(where, "a stage needs a `name:`")
    name = _name(doc, (*where, "name"), raw["name"], "stage name")
    if name in earlier:
        raise doc.error((*where, "name"), f"two stages are named '{name}'; stage names must be unique")
    trials, places = _trials(doc, where, raw)
    overrides = flat_options(doc, (*where, "overrides"), raw.get("overrides"), "overrides")
    if "epochs" in raw:
        if "train.epochs" in overrides:
            raise doc.error((*where, "epochs"), "give the epochs once: `epochs:` or `overrides: {train.epochs}`")
        overrides["train.epochs"] = check_option(doc, (*where, "epochs"), "train.epochs", raw["epochs"])
    metric = _metric(doc, (*where, "metric"), raw["metric"], spec.test_sets) if "metric" in raw else default_metric
    varied = tuple(dict.fromkeys(key for trial in trials for key in trial.settings))
    backbones = [trial.settings[BACKBONE] for trial in trials if BACKBONE in trial.settings]
    stage = StageSpec(
        name=name, description=str(raw.get("description", "")), trials=tuple(trials), overrides=overrides,
        metric=metric, inherit=_inherit(doc, (*where, "inherit"), raw.get("inherit"), earlier, name),
        paper=parse_paper(doc, (*where, "paper"), raw.get("paper"), [t.label for t in trials], backbones,
                          list(spec.test_sets)),
        varied=varied)
    return stage, places


def _test_sets(doc: LocatedYaml, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        raise doc.error(("test_sets",), "`test_sets:` must map names to folders, e.g. {sf_xs: test, "
                                        "tokyo_xs: ../tokyo_xs/test}")
    for name, path in value.items():
        _name(doc, ("test_sets", name), name, "test set name")
        if name == VAL:
            raise doc.error(("test_sets", name), "'val' names the validation set in metrics; call this test set "
                                                 "otherwise")
        if not isinstance(path, str) or not path:
            raise doc.error(("test_sets", name), f"test set '{name}' needs a folder path, got {path!r}")
    return dict(value)


def _seeds(doc: LocatedYaml, value: Any) -> tuple[int, ...]:
    """`seeds: [0, 1, 2]`: distinct values of train.seed, each trial run once with each."""
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise doc.error(("seeds",), f"`seeds:` must be a non-empty list of seeds, e.g. [0, 1, 2], got {value!r}")
    seeds = tuple(check_option(doc, ("seeds", i), SEED, seed) for i, seed in enumerate(value))
    if len(set(seeds)) < len(seeds):
        raise doc.error(("seeds",), f"`seeds:` lists a seed twice ({list(seeds)}); each seed runs once")
    return seeds


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a sweep spec; every error names the file and line, and what to write instead."""
    doc = load_located_yaml(path)
    top = _mapping(doc, (), doc.data, "a sweep spec", TOP_KEYS)
    for key in ("dataset", "test_sets", "stages"):
        if key not in top:
            raise doc.error((), f"a sweep spec needs `{key}:` (see docs/experiments.md)")
    if not isinstance(top["dataset"], str) or not top["dataset"]:
        raise doc.error(("dataset",), f"`dataset:` must be a folder path, got {top['dataset']!r}")
    test_sets = _test_sets(doc, top["test_sets"])
    spec = SweepSpec(
        name=_name(doc, ("name",), top.get("name", doc.path.stem), "sweep name"),
        description=str(top.get("description", "")).strip(), dataset=top["dataset"], test_sets=test_sets,
        base=flat_options(doc, ("base",), top.get("base"), "base"), stages=(), source_text=doc.path.read_text(),
        seeds=_seeds(doc, top.get("seeds")))
    default_metric = _metric(doc, ("metric",), top.get("metric", f"{next(iter(test_sets))}:R@1"), test_sets)
    if not isinstance(top["stages"], list) or not top["stages"]:
        raise doc.error(("stages",), "`stages:` must be a non-empty list of stages")
    stages: list[StageSpec] = []
    for index, value in enumerate(top["stages"]):
        stage, places = _stage(doc, ("stages", index), value, spec, default_metric, [s.name for s in stages])
        _check_trials(doc, spec, stage, places)
        stages.append(stage)
    return dataclasses.replace(spec, stages=tuple(stages))
