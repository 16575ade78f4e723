"""docs/reliability.md and the reliability tests match one to one: every promise cites a test that exists,
and every reliability test (each parametrised case) is cited by exactly one promise."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "reliability.md"
CITED = re.compile(r"`(tests/test_reliability_\w+\.py::[^`]+)`")


def _collected_tests(session: pytest.Session) -> set[str]:
    """The node ids of the reliability tests: those this session collected when it collected every reliability
    file unfiltered, else those a `pytest --collect-only` of the files lists (collection only: nothing runs)."""
    files = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "tests").glob("test_reliability_*.py"))
    ids = {item.nodeid for item in session.items if item.nodeid.split("::")[0] in files}
    filters = ("keyword", "markexpr", "deselect", "lf")
    unfiltered = not any(getattr(session.config.option, name, None) for name in filters)
    if unfiltered and {nodeid.split("::")[0] for nodeid in ids} == set(files):
        return ids
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {line.strip() for line in done.stdout.splitlines() if line.startswith("tests/") and "::" in line}


def test_the_promises_cite_every_reliability_test_once_and_nothing_else(request: pytest.FixtureRequest) -> None:
    cited = Counter(CITED.findall(DOCUMENT.read_text()))
    collected = _collected_tests(request.session)
    assert collected, "no reliability test collected"
    assert not [test for test, times in cited.items() if times > 1], "a test cited by two promises"
    assert sorted(set(cited) - collected) == [], "promises whose test does not exist"
    assert sorted(collected - set(cited)) == [], "tests that back no promise"
