"""Profiled speed-ups: for a slow test (`slow_test`, `slow_regression`) that a model is to make
faster, the test is profiled once, with cProfile, in the same worktree and sandbox (time and
memory limits) as every test run — the `overseer_profile` pytest plugin — and the hottest
functions of the project's own code (not the test, not site-packages) go into the finding's
`details["hot"]`: what the prompt names as the code to change.

Only for findings a generator other than `ruff_fix` would act on (ruff fixes no slow test), at
most MAX_PROFILED a commit, cached per commit and test command like the other baselines.

A benchmark regression (benchmark.py) is profiled the same way, once, but the benchmark is an
arbitrary command — `python bench.py`, `make bench`, a script — so it is not rewritten to run
under cProfile (which would need to know where its Python entry point is): it runs as it is,
in its sandbox, with overseer's `sitecustomize` (plumbing/profile_hook) first on PYTHONPATH,
which profiles every Python process the command starts, from start-up to exit, and leaves out
the script each one ran (the benchmark itself). The processes' functions are added up; the
hottest one's file becomes the finding's file, what the model edits.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from overseer.core.analyze.benchmark import REGRESSION, benchmark_key, run_benchmark
from overseer.core.analyze.findings import Finding
from overseer.core.plumbing.bus import PhaseReport
from overseer.core.plumbing.target import Target
from overseer.core.plumbing.testrun import build_test_env, resolve_test_command, run_tests
from overseer.core.record.history import History

SLOW_KINDS = ("slow_test", "slow_regression")
KEY = "profile:1"
MAX_PROFILED = 3
SHOWN = 5  # hot functions a prompt names
KEPT = 10  # hot functions of a benchmark kept, of all its processes together
MEASURABLE = 0.001  # seconds: a benchmark's function below it is left out
HOOK_DIR = Path(__file__).parents[1] / "plumbing" / "profile_hook"


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


def profile_benchmark(
    target: Target, tree: Path, cancel: threading.Event | None = None
) -> list[dict[str, Any]]:
    """The hottest functions of the project's code while the benchmark command runs, once,
    added up over the Python processes it started; [] when it failed or ran no Python."""
    cfg = target.config
    assert cfg.benchmark_command
    with tempfile.TemporaryDirectory(prefix="overseer-profile-") as scratch:
        env = build_test_env(
            tree,
            resolve_test_command(cfg, target.root),
            {**cfg.env, "OVERSEER_PROFILE_DIR": scratch, "OVERSEER_PROFILE_ROOT": str(tree)},
            cfg.pass_env,
        )
        env["PYTHONPATH"] = f"{HOOK_DIR}{os.pathsep}{env['PYTHONPATH']}"
        result = run_benchmark(cfg, tree, env, cancel=cancel, outputs=[Path(scratch)])
        if not result.get("ok"):
            return []
        total: dict[tuple[str, int, str], dict[str, Any]] = {}
        for written in sorted(Path(scratch).glob("*.json")):
            try:
                functions = json.loads(written.read_text(encoding="utf-8"))["hot"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a process that died while writing: the others still count
            for h in functions:
                key = (h["file"], h["line"], h["function"])
                into = total.setdefault(key, {**h, "cumulative": 0.0, "own": 0.0, "calls": 0})
                for measure in ("cumulative", "own", "calls"):
                    into[measure] += h[measure]
    # What took no measurable time (a module's import, say) is nothing to make faster.
    hot = [h for h in total.values() if h["cumulative"] >= MEASURABLE]
    hot.sort(key=lambda h: (-h["cumulative"], h["file"], h["line"]))
    for h in hot:
        h["cumulative"], h["own"] = round(h["cumulative"], 4), round(h["own"], 4)
    return hot[:KEPT]


def profile_benchmark_regression(
    target: Target,
    commit: str,
    finding: Finding,
    *,
    history: History,
    tree: Callable[[], Path],
    report: PhaseReport,
    cancel: threading.Event | None = None,
) -> None:
    """The benchmark profiled once at `commit` (cached): its hot functions into the finding's
    `details`, and the hottest one's file as the finding's file, what a model is to change."""
    assert target.config.benchmark_command
    key = f"{KEY}:{benchmark_key(target.config.benchmark_command)}"
    cached = history.get_baseline(target.key, commit, key)
    if cached is None:
        report.progress("profiling the benchmark")
        cached = {"hot": profile_benchmark(target, tree(), cancel)}
        history.put_baseline(target.key, commit, key, cached)
    if cached["hot"]:
        finding.details["hot"] = cached["hot"]
        finding.file = cached["hot"][0]["file"]


def hot_lines(finding: Finding) -> list[str]:
    """The prompt's words for a profiled slow test or benchmark."""
    hot = (finding.details.get("hot") or [])[:SHOWN]
    if not hot:
        return []
    benchmark = finding.kind == REGRESSION
    lines = [
        "Profiled once with cProfile, the hottest functions of the project's own code while "
        f"{'the benchmark' if benchmark else 'this test'} runs (cumulative seconds, own seconds):"
    ]
    lines += [
        f"- {h['function']} ({h['file']}:{h['line']}): {h['cumulative']:.3f} s, own "
        f"{h['own']:.3f} s, {h['calls']} call(s)"
        for h in hot
    ]
    what = "the benchmark" if benchmark else "the test"
    lines.append(
        f"Make these faster without changing what they return or do; do not edit {what}. "
        f"The change is kept only if {what} is measurably faster and every test still passes."
    )
    return lines


def hot_files(finding: Finding) -> list[str]:
    """The files of the hot functions, hottest first."""
    return list(dict.fromkeys(h["file"] for h in finding.details.get("hot") or []))
