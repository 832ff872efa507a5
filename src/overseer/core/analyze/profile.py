"""Profiled speed-ups: for a slow test (`slow_test`, `slow_regression`) that a model is to make
faster, the test is profiled once, with cProfile, in the same worktree and sandbox (time and
memory limits) as every test run — the `overseer_profile` pytest plugin — and the hottest
functions of the project's own code (not the test, not site-packages) go into the finding's
`details["hot"]`: what the prompt names as the code to change.

Only for findings a generator other than `ruff_fix` would act on (ruff fixes no slow test), at
most MAX_PROFILED a commit, cached per commit and test command like the other baselines.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from overseer.core.analyze.findings import Finding
from overseer.core.plumbing.bus import PhaseReport
from overseer.core.plumbing.target import Target
from overseer.core.plumbing.testrun import resolve_test_command, run_tests
from overseer.core.record.history import History

SLOW_KINDS = ("slow_test", "slow_regression")
KEY = "profile:1"
MAX_PROFILED = 3
SHOWN = 5  # hot functions a prompt names


def profile_test(
    target: Target, tree: Path, test_id: str, file: str, cancel: threading.Event | None = None
) -> list[dict[str, Any]]:
    """The hottest functions of the project's code while `test_id` (in `file`) runs, once."""
    with tempfile.TemporaryDirectory(prefix="overseer-profile-") as scratch:
        out = Path(scratch) / "profile.json"
        run_tests(
            target.config,
            target.root,
            tree,
            cancel=cancel,
            rerun_failures=False,
            only=[file],
            profile=(test_id, out),
        )
        try:
            return list(json.loads(out.read_text(encoding="utf-8")).get("hot") or [])
        except (OSError, ValueError):
            return []


def profile_slow_tests(
    target: Target,
    commit: str,
    findings: list[Finding],
    *,
    history: History,
    tree: Callable[[], Path],
    report: PhaseReport,
    generator_for: Callable[[Finding], str | None],
    cancel: threading.Event | None = None,
) -> None:
    """Profile the slowest tests a model is to speed up; their hot functions into `details`."""
    slow = [
        f
        for f in findings
        if f.kind in SLOW_KINDS
        and f.file
        and generator_for(f) not in (None, "ruff_fix")
        and f.details.get("test")
    ]
    slow.sort(key=lambda f: -float(f.details.get("duration") or f.details.get("now") or 0))
    if not slow:
        return
    key = f"{KEY}:{resolve_test_command(target.config, target.root).key}"
    cached: dict[str, Any] = history.get_baseline(target.key, commit, key) or {}
    changed = False
    for finding in slow[:MAX_PROFILED]:
        test = finding.details["test"]
        if test not in cached:
            report.progress(f"profiling {test}")
            cached[test] = profile_test(target, tree(), test, finding.file or "", cancel)
            changed = True
        if cached[test]:
            finding.details["hot"] = cached[test]
    if changed:
        history.put_baseline(target.key, commit, key, cached)


def hot_lines(finding: Finding) -> list[str]:
    """The prompt's words for a profiled slow test."""
    hot = (finding.details.get("hot") or [])[:SHOWN]
    if not hot:
        return []
    lines = [
        "Profiled once with cProfile, the hottest functions of the project's own code while "
        "this test runs (cumulative seconds, own seconds):"
    ]
    lines += [
        f"- {h['function']} ({h['file']}:{h['line']}): {h['cumulative']:.3f} s, own "
        f"{h['own']:.3f} s, {h['calls']} call(s)"
        for h in hot
    ]
    lines.append(
        "Make these faster without changing what they return or do; do not edit the test. "
        "The change is kept only if the test is measurably faster and every test still passes."
    )
    return lines


def hot_files(finding: Finding) -> list[str]:
    """The files of the hot functions, hottest first."""
    return list(dict.fromkeys(h["file"] for h in finding.details.get("hot") or []))
