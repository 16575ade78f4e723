"""The report's tables in the paper's layout: rows = settings, R@1/R@5 per test set, the winner marked."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from cosplace_xs.sweep.labels import format_value
from cosplace_xs.sweep.runner import PlannedTrial, StagePlan
from cosplace_xs.sweep.spec import BACKBONE, VAL
from cosplace_xs.sweep.trial import DONE

WINNER = "★"
SHOWN_RECALLS = (1, 5)  # the paper's columns


@dataclass
class Table:
    """A table as CSV rows (plain values) and as Markdown (figures, paper's in parentheses, winner bold)."""

    columns: list[str]
    rows: list[dict[str, Any]]
    markdown: str

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns)
        writer.writeheader()
        writer.writerows(self.rows)
        return buffer.getvalue()


def markdown_table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    """A Markdown table; columns in `right` are right-aligned (figures), a last ★ column centred."""
    rules = ["---:" if i in right else ":-:" if name == WINNER else "---" for i, name in enumerate(header)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rules) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _recalls(stage: StagePlan) -> list[int]:
    metric = stage.stage.metric
    return sorted({*SHOWN_RECALLS, metric.n}) if metric.source != VAL else list(SHOWN_RECALLS)


def _figure(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _cell(ours: float | None, paper: float | None, bold: bool, std: float | None = None) -> str:
    """Our figure (mean ± standard deviation over seeds where there are several), the paper's in parentheses."""
    figure = _figure(ours) if std is None or ours is None else f"{ours:.1f} ± {std:.1f}"
    text = f"**{figure}**" if bold and ours is not None else figure
    return text if paper is None else f"{text} ({paper:.1f})"


def _std(result: dict[str, Any] | None, source: str, recall: str) -> float | None:
    """The standard deviation over seeds of a figure of a trial with `seeds:` (None for a single run)."""
    spread = (result or {}).get("std") or {}
    per_source = spread.get("val") if source == VAL else spread.get("test", {}).get(source)
    return None if per_source is None else per_source.get(recall)


def _status(trial: PlannedTrial) -> str:
    return trial.status if trial.error is None else f"{trial.status}: {trial.error}"


def _figures_table(stage: StagePlan, sets: list[str], rows: list[tuple[str, PlannedTrial | None, bool]],
                   first: str, extra: tuple[str, list[str]] | None = None) -> Table:
    """Rows of (name, trial, is winner): figures of each test set with the paper's beside ours; `extra` is
    one more column (header, values) after the name."""
    recalls, metric = _recalls(stage), stage.stage.metric
    figures = [(s, n) for s in sets for n in recalls]
    with_paper = any(name in stage.stage.paper for name, _, _ in rows)
    seeds = next((trial.result["seeds"] for _, trial, _ in rows if trial and trial.result and "seeds" in trial.result),
                 None)
    val_column = [f"val R@{metric.n}"] if metric.source == VAL else []
    extra_column = [extra[0]] if extra else []
    columns = [first, *extra_column, "status", "winner", *[f"{s} R@{n}" for s, n in figures],
               *([f"{s} R@{n} std" for s, n in figures] if seeds else []),
               *([f"paper {s} R@{n}" for s, n in figures] if with_paper else []), *val_column,
               *([f"{val_column[0]} std"] if seeds and val_column else [])]
    header = [first.capitalize(), *[name.capitalize() for name in extra_column],
              *[f"{s} R@{n}" for s, n in figures], *val_column, WINNER]
    csv_rows, md_rows = [], []
    for index, (name, trial, winner) in enumerate(rows):
        result = trial.result if trial is not None and trial.status == DONE else None
        paper = stage.stage.paper.get(name, {})
        row: dict[str, Any] = {first: name, "status": "—" if trial is None else _status(trial), "winner": int(winner)}
        cells = [f"**{name}**" if winner else name]
        if extra:
            row[extra[0]] = extra[1][index]
            cells.append(extra[1][index])
        for s, n in figures:
            row[f"{s} R@{n}"] = None if result is None else result["test"].get(s, {}).get(f"R@{n}")
            if seeds:
                row[f"{s} R@{n} std"] = _std(result, s, f"R@{n}")
            if with_paper:
                row[f"paper {s} R@{n}"] = paper.get(s, {}).get(f"R@{n}")
            cells.append(_cell(row[f"{s} R@{n}"], paper.get(s, {}).get(f"R@{n}"), winner, _std(result, s, f"R@{n}")))
        if trial is not None and result is None and figures:  # say why there are no figures
            cells[len(cells) - len(figures)] = _status(trial)
        if val_column:
            row[val_column[0]] = None if result is None or result.get("val") is None \
                else result["val"].get(f"R@{metric.n}")
            std = _std(result, VAL, f"R@{metric.n}")
            if seeds:
                row[f"{val_column[0]} std"] = std
            cells.append(_cell(row[val_column[0]], None, winner, std))
        cells.append(WINNER if winner else "")
        csv_rows.append(row)
        md_rows.append(cells)
    right = set(range(1 + len(extra_column), len(header) - 1))
    note = "\nIn parentheses: the paper's figures.\n" if with_paper else ""
    if seeds:
        note += f"\nMean ± standard deviation over seeds {', '.join(map(str, seeds))}.\n"
    return Table(columns, csv_rows, markdown_table(header, md_rows, right) + note)


def stage_table(stage: StagePlan, test_sets: list[str]) -> Table:
    """One row per trial, in the order of the spec; the winner in bold with a star."""
    rows = [(trial.spec.label, trial, trial is stage.winner) for trial in stage.trials]
    return _figures_table(stage, test_sets, rows, "setting")


def backbone_table(stage: StagePlan, test_sets: list[str]) -> Table | None:
    """For stages that try several backbones: the best trial of each (the paper's Table 4), or None."""
    if BACKBONE not in stage.stage.varied:
        return None
    backbones = list(dict.fromkeys(t.spec.settings[BACKBONE] for t in stage.trials if BACKBONE in t.spec.settings))
    rows = []
    for backbone in backbones:
        done = [t for t in stage.trials if t.spec.settings.get(BACKBONE) == backbone and t.status == DONE
                and t.metric is not None]
        best = max(done, key=lambda t: t.metric, default=None)  # max keeps the first of equal values
        rows.append((backbone, best, best is not None and best is stage.winner))
    labels = [best.spec.label if best else "—" for _, best, _ in rows]
    return _figures_table(stage, test_sets, rows, "backbone", ("best setting", labels))


def options_text(options: dict[str, Any]) -> str:
    return ", ".join(f"`{key}={format_value(value)}`" for key, value in options.items()) or "none"
