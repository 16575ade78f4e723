"""`sweep_state.json`: where a sweep stands (each trial's status and metric, each stage's winner).

The trial folders are the record of truth; this file summarises them after every trial, and keeps what a
restart needs besides the spec: the dataset the sweep was started on and the options it started from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cosplace_xs.atomic_files import write_text_atomic
from cosplace_xs.errors import ConfigError
from cosplace_xs.sweep.trial import RESULT

STATE = "sweep_state.json"
SPEC_COPY = "spec.yaml"
FORMAT = "cosplace-xs-sweep/1"


@dataclass(frozen=True)
class StartPoint:
    """Options a sweep starts from: the winner of a stage of another sweep (e.g. Table 2's for Table 3)."""

    sweep_dir: str
    stage: str
    label: str
    options: dict[str, Any]


def read_state(sweep_dir: Path) -> dict[str, Any] | None:
    path = sweep_dir / STATE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: unreadable sweep state ({error}); delete it, the trial folders are kept") from None
    if state.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a cosplace-xs sweep state (no '{FORMAT}' format tag)")
    return state


def write_state(sweep_dir: Path, state: dict[str, Any]) -> None:
    state = {"format": FORMAT, **state, "updated": datetime.now().isoformat(timespec="seconds")}
    write_text_atomic(sweep_dir / STATE, json.dumps(state, indent=2) + "\n")


def stored_start(state: dict[str, Any] | None) -> StartPoint | None:
    start = (state or {}).get("start_from")
    return None if start is None else StartPoint(**start)


def find_start_point(path: Path) -> StartPoint:
    """The winner of `SWEEP_DIR/STAGE`, or of the last stage of `SWEEP_DIR` that has one."""
    path = Path(path)
    sweep_dir, stage_name = (path, None) if (path / STATE).is_file() else (path.parent, path.name)
    state = read_state(sweep_dir)
    if state is None:
        raise ConfigError(f"--start-from {path}: not a sweep folder (no {STATE}), nor a stage folder inside one")
    stages = [s for s in state["stages"] if stage_name in (None, s["name"])]
    if stage_name is not None and not stages:
        raise ConfigError(f"--start-from {path}: the sweep in {sweep_dir} has no stage '{stage_name}'")
    with_winner = [s for s in stages if s.get("winner")]
    if not with_winner:
        raise ConfigError(f"--start-from {path}: no winner yet ({'stage ' + stage_name if stage_name else 'no stage'}"
                          f" of {sweep_dir} has a finished trial); finish that sweep first")
    stage = with_winner[-1]
    trial = next(t for t in stage["trials"] if t["slug"] == stage["winner"])
    folder = trial["runs"][0]["folder"] if trial.get("runs") else trial["folder"]  # every seed ran the same options
    result = json.loads((sweep_dir / folder / RESULT).read_text())
    return StartPoint(str(sweep_dir), stage["name"], trial["label"], result["options"])
