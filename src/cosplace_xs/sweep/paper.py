"""The paper's own figures for a stage's rows (`paper:` in a spec), shown beside ours in the report."""

from __future__ import annotations

import re
from typing import Any

from cosplace_xs.sweep.located_yaml import LocatedYaml, Where

RECALL = re.compile(r"^R@(\d+)$")

PaperFigures = dict[str, dict[str, dict[str, float | None]]]  # row -> test set -> "R@N" -> percent


def parse_paper(doc: LocatedYaml, where: Where, value: Any, labels: list[str], backbones: list[str],
                test_sets: list[str]) -> PaperFigures:
    """`{row: {test_set: {R@1: 19.1, R@5: 32.1}}}` where a row is a trial label, or a backbone the stage
    tries (its best trial is compared, as in the paper's Table 4)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise doc.error(where, f"`paper:` must map row labels to figures, got {value!r}")
    figures: PaperFigures = {}
    for row, per_set in value.items():
        row_where = (*where, row)
        if row not in labels and row not in backbones:
            known = ", ".join(repr(name) for name in [*labels, *dict.fromkeys(backbones)])
            raise doc.error(row_where, f"paper figures for {row!r}, which is no trial label of this stage "
                                       f"(nor a backbone it tries); known: {known}")
        if not isinstance(per_set, dict):
            raise doc.error(row_where, f"paper figures of {row!r} must map test sets to {{R@1: .., R@5: ..}}")
        figures[row] = {}
        for test_set, recalls in per_set.items():
            set_where = (*row_where, test_set)
            if test_set not in test_sets:
                raise doc.error(set_where, f"paper figures name the unknown test set {test_set!r}; known: "
                                           f"{', '.join(test_sets)}")
            if not isinstance(recalls, dict):
                raise doc.error(set_where, f"paper figures of {row!r} on {test_set} must be {{R@1: .., R@5: ..}}")
            for key, figure in recalls.items():
                if not isinstance(key, str) or not RECALL.match(key):
                    raise doc.error((*set_where, key), f"paper figure {key!r} must be named R@N, e.g. R@1")
                if figure is not None and (isinstance(figure, bool) or not isinstance(figure, int | float)):
                    raise doc.error((*set_where, key), f"paper figure {key} must be a percentage, got {figure!r}")
            figures[row][test_set] = {key: None if f is None else float(f) for key, f in recalls.items()}
    return figures
