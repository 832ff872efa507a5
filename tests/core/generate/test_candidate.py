"""A candidate's diff, its size and what the record shows of it."""

from __future__ import annotations

import difflib

from overseer.core.analyze.findings import Finding
from overseer.core.generate.candidate import Candidate, FileChange, Risk

BEFORE = "".join(f"line {i}\n" for i in range(200))
AFTER = BEFORE.replace("line 7\n", "line seven\n").replace("line 150\n", "")


def candidate() -> Candidate:
    finding = Finding("F401", "quality", "quality", "a.py", "unused import")
    return Candidate(
        "ruff", finding, "quality", Risk.LOW, "fix", "", "", [FileChange("a.py", BEFORE, AFTER)]
    )


def test_the_diff_says_what_changed():
    c = candidate()
    assert c.diff.startswith("--- a/a.py\n+++ b/a.py\n")
    assert "-line 7\n+line seven\n" in c.diff and "-line 150\n" in c.diff
    assert c.lines_changed == 3
    assert c.recorded_diff(["*.env"]) == c.diff
    assert "is not shown" in c.recorded_diff(["a.py"])


def test_a_file_change_is_diffed_once(monkeypatch):
    # SAFETY asks for the diff and the size of a candidate several times; on a large file each
    # difflib run takes milliseconds.
    runs = []
    unified = difflib.unified_diff

    def counted(*args, **kwargs):
        runs.append(1)
        return unified(*args, **kwargs)

    monkeypatch.setattr(difflib, "unified_diff", counted)
    c = candidate()
    first = c.diff
    assert [c.lines_changed for _ in range(4)] == [3] * 4
    assert c.recorded_diff([]) == c.diff == first
    assert len(runs) == 1
