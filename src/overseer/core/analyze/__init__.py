"""ANALYZE: what is worth improving at the target branch's head. Modifies nothing.

Runs the tests (JUnit per-test results and durations), ruff and the optional benchmark in a
worktree of our own at the branch head, looks for the features the repository documents
(features.py: xfail tests, NotImplementedError, TODO comments), and caches the results per
commit, so a later cycle on an unchanged head costs no test run. The user's checkout is never
used.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overseer.core.analyze import benchmark as benchmarks
from overseer.core.analyze import coverage as coverage_area
from overseer.core.analyze import features as feature_area
from overseer.core.analyze import profile as profiling
from overseer.core.analyze.findings import Finding
from overseer.core.analyze.lint import LintReport, lint_findings, lint_key, run_ruff
from overseer.core.analyze.rank import rank, ranking_seed
from overseer.core.plumbing.bus import PhaseReport
from overseer.core.plumbing.bytecode import BytecodeCache
from overseer.core.plumbing.target import Target
from overseer.core.plumbing.testrun import (
    TestCase,
    TestCommand,
    TestReport,
    build_test_env,
    resolve_test_command,
    run_tests,
)
from overseer.core.record.history import History

log = logging.getLogger(__name__)


class AnalysisFailed(Exception):
    """The baseline could not be established, so nothing can be evaluated against it.
    `why`: the cause in a few words; `command` and `output_tail`: what ran and the last lines
    it printed, for a person to see why."""

    def __init__(
        self, message: str, output_tail: str = "", *, why: str = "", command: str = ""
    ) -> None:
        super().__init__(message)
        self.output_tail = output_tail
        self.why = why or message
        self.command = command


@dataclass
class Analysis:
    commit: str
    tests: TestReport
    tests_cached: bool
    lint: LintReport
    lint_cached: bool
    benchmark: dict[str, Any] | None
    findings: list[Finding]
    slow_test_seconds: float
    area: str = "auto"
    features: int | None = None  # feature findings at the commit; None: not looked for
    #: whether the baseline's tests run at the same time as a candidate's, and why
    concurrency: dict[str, Any] | None = None
    #: the baseline's tests not run yet (a lint finding, evaluated concurrently): runs them in
    #: the worktree given, saying its progress to the report given, and caches them; None
    #: once `tests` holds them
    pending_baseline: Callable[[Path, PhaseReport], TestReport] | None = None
    #: why the baseline, run with a candidate's tests, could not be evaluated
    baseline_failure: AnalysisFailed | None = None

    @property
    def slow_tests(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "slow_test"]

    def summary(self) -> str:
        t = self.tests
        if self.pending_baseline is not None:
            parts = ["tests to run with the candidate's, at once"]
        else:
            parts = [f"{len(t.cases)} tests" if t.has_junit else "tests run (no per-test report)"]
        failing = len(t.failing)
        if failing:
            parts.append(f"{failing} failing")
        if t.blocked:
            parts.append(
                f"{len(t.blocked)} of them refused a write or signal by the confinement "
                "(add the directory they write in to writable_paths, or set confine_tests: false)"
            )
        if t.flaky:
            parts.append(f"{len(t.flaky)} flaky")
        parts.append(f"{len(self.slow_tests)} slow")
        parts.append(f"{self.lint.total} lint findings" if self.lint.ok else "lint failed")
        if self.features or (self.features == 0 and self.area == feature_area.AREA):
            parts.append(f"{self.features} feature findings")
        if self.benchmark is not None:
            parts.append("benchmark ok" if self.benchmark.get("ok") else "benchmark failed")
        cached = [
            name for name, hit in (("tests", self.tests_cached), ("lint", self.lint_cached)) if hit
        ]
        if cached:
            parts.append(f"cached {' and '.join(cached)} for {self.commit[:7]}")
        return ", ".join(parts)

    def to_dict(self, *, top: int = 20) -> dict[str, Any]:
        t = self.tests
        return {
            "commit": self.commit,
            "summary": self.summary(),
            "tests": {
                "command": t.command,
                "interpreter": t.interpreter,
                "ok": t.ok,
                "returncode": t.returncode,
                "timed_out": t.timed_out,
                "duration": t.duration,
                "passed": t.passed,
                "failed": len(t.failing),
                "skipped": t.skipped,
                "failing": sorted(t.failing),
                "flaky": t.flaky,
                "cached": self.tests_cached,
            },
            "lint": {
                "ok": self.lint.ok,
                "error": self.lint.error,
                "total": self.lint.total,
                "by_rule": self.lint.by_rule,
                "cached": self.lint_cached,
            },
            "benchmark": self.benchmark,
            "slow_test_seconds": self.slow_test_seconds,
            "findings": [f.to_dict() for f in self.findings[:top]],
            "findings_total": len(self.findings),
            "area": self.area,
            "features": self.features,
            "concurrency": self.concurrency,
        }


def _test_finding(kind: str, test_id: str, case: TestCase, message: str, **details: Any) -> Finding:
    """A finding about one test: failing and flaky tests are bugs, slow ones performance."""
    slow = kind in ("slow_test", "slow_regression")
    return Finding(
        kind=kind,
        area="performance" if slow else "quality",
        change_type="optimization" if slow else "bugfix",
        file=case.file,
        message=message,
        details={"test": test_id, **details},
    )


def findings_from_tests(tests: TestReport, slow_seconds: float) -> list[Finding]:
    findings = []
    flaky = set(tests.flaky)
    # Not the code's fault but the confinement's, most likely: never a finding to "fix" (the
    # analysis says so, and what to do: Analysis.summary).
    blocked = tests.blocked
    for test_id in sorted(flaky):
        message = f"{test_id} is flaky: it failed, then passed when run again"
        findings.append(_test_finding("flaky_test", test_id, tests.cases[test_id], message))
    for test_id, case in sorted(tests.cases.items()):
        if test_id in flaky:
            continue
        if case.outcome in ("failed", "error"):
            if test_id in blocked:
                continue
            message = f"{test_id} fails: {case.message or 'no message'}"
            findings.append(_test_finding("failing_test", test_id, case, message))
        elif case.outcome == "passed" and case.duration >= slow_seconds:
            message = f"{test_id} takes {case.duration:.2f} s (threshold {slow_seconds:g} s)"
            findings.append(
                _test_finding("slow_test", test_id, case, message, duration=case.duration)
            )
    return findings


# A test "became slower" when it takes half as long again as it used to, at least this much
# longer, and more than its own spread can explain.
REGRESSION_FACTOR = 1.5
REGRESSION_MIN_SECONDS = 0.1
REGRESSION_MIN_COMMITS = 3


def slow_regressions(
    tests: TestReport, earlier: dict[str, list[tuple[str, float]]]
) -> list[Finding]:
    """Tests significantly slower than at the earlier analysed commits (the seed's Query Store
    analysis of regressions over time)."""
    import statistics

    findings = []
    for test_id, case in sorted(tests.cases.items()):
        history = earlier.get(test_id, [])
        if case.outcome != "passed" or len(history) < REGRESSION_MIN_COMMITS:
            continue
        before = [d for _, d in history]
        median = statistics.median(before)
        spread = statistics.median(abs(d - median) for d in before)
        now = case.duration
        if (
            now > median * REGRESSION_FACTOR
            and now - median > REGRESSION_MIN_SECONDS
            and now > median + 3 * spread
        ):
            findings.append(
                _test_finding(
                    "slow_regression",
                    test_id,
                    case,
                    f"{test_id} became slower: {now:.2f} s now, {median:.2f} s before "
                    f"(median of {len(before)} earlier commits since {history[-1][0][:7]})",
                    now=now,
                    before=median,
                    commits=[c for c, _ in history],
                )
            )
    return findings


def tests_key(command: TestCommand) -> str:
    """The baseline cache's key for a test command's results."""
    return f"tests:{command.key}"


def baseline_tests(
    target: Target,
    commit: str,
    *,
    history: History,
    make_tree: Callable[[], Path],
    report: PhaseReport,
    cancel: threading.Event | None = None,
    bytecode: BytecodeCache | None = None,
) -> tuple[TestReport, bool]:
    """The test results at `commit`: from the cache, or run once and cached. `commit` is
    accepted code (the target's branch), so its run adds to the `bytecode` cache."""
    command = resolve_test_command(target.config, target.root)
    key = tests_key(command)
    cached = history.get_baseline(target.key, commit, key)
    if cached is not None:
        return TestReport.from_dict(cached), True
    report.progress(f"running tests at {commit[:7]} with {command.interpreter}")
    tests = run_tests(
        target.config,
        target.root,
        make_tree(),
        on_progress=lambda done, total: report.progress("tests", done, total),
        cancel=cancel,
        bytecode=bytecode.learning() if bytecode is not None else None,
    )
    if tests.timed_out:
        raise AnalysisFailed(
            f"baseline {tests.describe()}",
            tests.tail(),
            why=tests.describe(),
            command=command.command,
        )
    why = tests.not_evaluable(target.config.min_tests)
    if why:
        # Not cached: the fix is usually outside the repository (a missing dependency, a
        # wrong test_command), and the next cycle should see it fixed without a new commit.
        raise AnalysisFailed(
            f"the tests at {commit[:7]} cannot be evaluated: {why}; nothing can be promoted "
            "until they can",
            tests.tail(),
            why=why,
            command=command.command,
        )
    history.put_baseline(target.key, commit, key, tests.to_dict())
    # Kept per analysed commit, so a test that became slower over time can be found.
    history.record_durations(
        target.key, commit, {t: c.duration for t, c in tests.cases.items() if c.outcome == "passed"}
    )
    return tests, False


def analyze(
    target: Target,
    commit: str,
    *,
    history: History,
    make_tree: Callable[[], Path],
    report: PhaseReport,
    area: str,
    generator_for: Callable[[Finding], str | None],
    cancel: threading.Event | None = None,
    concurrently: Callable[[], tuple[bool, str]] | None = None,
    bytecode: BytecodeCache | None = None,
) -> Analysis:
    """Analyze `commit`; `make_tree` checks it out in a worktree of ours only if needed.

    The findings are ranked by Thompson sampling, its draws seeded by the state they are
    drawn for (the commit, the findings, what was learned), not by the run: a dry run ranks
    them as a real run on the same head would, and so previews it."""
    cfg = target.config
    tree: Path | None = None

    def worktree() -> Path:
        nonlocal tree
        if tree is None:
            report.progress(f"checking out {commit[:7]} in a worktree of overseer's")
            tree = make_tree()
        return tree

    key = lint_key(cfg.ruff_select)
    cached_lint = history.get_baseline(target.key, commit, key)
    if cached_lint is not None:
        lint, lint_cached = LintReport.from_dict(cached_lint), True
    else:
        report.progress("running ruff")
        lint, lint_cached = run_ruff(worktree(), cfg.ruff_select), False
        if lint.ok:
            history.put_baseline(target.key, commit, key, lint.to_dict())

    concurrency = _concurrency(target, commit, history, lint, area, generator_for, concurrently)

    def analysis(
        tests: TestReport,
        findings: list[Finding],
        *,
        tests_cached: bool = False,
        benchmark: dict[str, Any] | None = None,
        features: int | None = None,
        pending_baseline: Callable[[Path, PhaseReport], TestReport] | None = None,
    ) -> Analysis:
        """What ANALYZE found at `commit`, the findings ranked."""
        counts = history.success_counts()
        return Analysis(
            commit=commit,
            tests=tests,
            tests_cached=tests_cached,
            lint=lint,
            lint_cached=lint_cached,
            benchmark=benchmark,
            findings=rank(
                findings,
                area=area,
                generator_for=generator_for,
                counts=counts,
                rng=random.Random(ranking_seed(commit, findings, counts)),
            ),
            slow_test_seconds=cfg.slow_test_seconds,
            area=area,
            features=features,
            concurrency=concurrency,
            pending_baseline=pending_baseline,
        )

    if concurrency["concurrent"]:
        # Ruff first; the baseline's tests run later, with the candidate's (evaluate/concurrent.py).
        command = resolve_test_command(cfg, target.root)

        def pending(tree: Path, said: PhaseReport) -> TestReport:
            tests = baseline_tests(
                target,
                commit,
                history=history,
                make_tree=lambda: tree,
                report=said,
                cancel=cancel,
                bytecode=bytecode,
            )[0]
            if area == "auto":
                # The next cycle on this commit finds the baseline cached and looks for the
                # features; looked for here instead, in the baseline's tree, while the
                # candidate's tests may still run (~1 s on a project of 100 files).
                try:
                    _features(
                        target, commit, tests, history=history, tree=lambda: tree, report=said
                    )
                except Exception:  # a cycle that follows looks again; this one is not its judge
                    log.warning("looking for features at %s failed", commit[:7], exc_info=True)
            return tests

        return analysis(
            TestReport(command.command, command.interpreter, None, False, 0.0, "", False),
            lint_findings(lint),
            pending_baseline=pending,
        )

    tests, tests_cached = baseline_tests(
        target,
        commit,
        history=history,
        make_tree=worktree,
        report=report,
        cancel=cancel,
        bytecode=bytecode,
    )

    benchmark = None
    if cfg.benchmark_command:
        bench_key = benchmarks.benchmark_key(cfg.benchmark_command)
        benchmark = history.get_baseline(target.key, commit, bench_key)
        if benchmark is None:
            report.progress("running the benchmark")
            env = build_test_env(
                worktree(), resolve_test_command(cfg, target.root), dict(cfg.env), cfg.pass_env
            )
            benchmark = benchmarks.run_benchmark(cfg, worktree(), env, cancel=cancel)
            if benchmark.get("ok"):
                history.put_baseline(target.key, commit, bench_key, benchmark)

    findings = findings_from_tests(tests, cfg.slow_test_seconds)
    findings += slow_regressions(tests, history.earlier_durations(target.key, commit))
    if lint.ok:
        findings += lint_findings(lint)
    if area in ("auto", "performance"):  # what a model is to speed up: profiled once
        regressed = None
        if benchmark is not None and cfg.benchmark_command:
            earlier = history.earlier_baselines(
                target.key, commit, benchmarks.benchmark_key(cfg.benchmark_command)
            )
            regressed = benchmarks.regression(benchmark, earlier, cfg.benchmark_metric)
        if regressed is not None:
            profiling.profile_benchmark_regression(
                target,
                commit,
                regressed,
                history=history,
                tree=worktree,
                report=report,
                cancel=cancel,
            )
            findings.append(regressed)
        profiling.profile_slow_tests(
            target,
            commit,
            findings,
            history=history,
            tree=worktree,
            report=report,
            generator_for=generator_for,
            cancel=cancel,
        )
    if cfg.new_tests.enabled and area in ("auto", coverage_area.AREA):
        findings += coverage_area.coverage_findings(
            target, commit, history=history, tree=worktree, report=report, cancel=cancel
        )
    features = None
    if area in ("auto", feature_area.AREA):
        found = _features(target, commit, tests, history=history, tree=worktree, report=report)
        features = len(found)
        findings += found
    return analysis(
        tests, findings, tests_cached=tests_cached, benchmark=benchmark, features=features
    )


def _concurrency(
    target: Target,
    commit: str,
    history: History,
    lint: LintReport,
    area: str,
    generator_for: Callable[[Finding], str | None],
    concurrently: Callable[[], tuple[bool, str]] | None,
) -> dict[str, Any]:
    """Whether this cycle's tests at `commit` wait for a candidate's, to run at once, and why.
    Only for lint findings: the findings of the tests themselves (failing, slow, flaky), the
    features and a benchmark need the baseline first, as always."""

    def no(why: str) -> dict[str, Any]:
        return {"concurrent": False, "reason": why}

    if concurrently is None:
        return no("not asked for")
    command = resolve_test_command(target.config, target.root)
    if history.get_baseline(target.key, commit, tests_key(command)) is not None:
        return no(f"the baseline's tests at {commit[:7]} are cached: nothing to run at once")
    if target.config.benchmark_command:
        return no("a benchmark is configured: the baseline first")
    if target.config.ci is not None:
        return no("an external CI judges the candidates: the baseline first")
    if area not in ("auto", "quality", "performance"):
        return no(f"area {area}: the baseline first")
    # What the target's tests said last time, at another commit. Under `auto`, never seen run
    # (a new target, a new test command) or not evaluable then: the baseline first, so that a
    # command that cannot run is a red ANALYZE that records no attempt (`true` accepts that it
    # is found in EVALUATE instead: a not-evaluable attempt that settles nothing).
    last = history.earlier_baselines(target.key, commit, tests_key(command), 1)
    careful = target.config.evaluate_concurrently == "auto"
    if careful and not last:
        return no("this test command has not run on this target before: the baseline first")
    for earlier, results in last:
        report = TestReport.from_dict(results)
        if careful and report.not_evaluable(target.config.min_tests):
            return no(f"the tests at {earlier[:7]} could not be evaluated: the baseline first")
        from_tests = findings_from_tests(report, target.config.slow_test_seconds)
        if from_tests:
            # Likely again at this commit: those findings need the baseline's results first.
            return no(
                f"the tests at {earlier[:7]} had {len(from_tests)} failing, flaky or slow "
                "test(s): the baseline first"
            )
    go, why = concurrently()
    if not go:
        return no(why)
    found = lint_findings(lint) if lint.ok else []
    actionable = [
        f for f in found if (area == "auto" or f.area == area) and generator_for(f) is not None
    ]
    if not actionable:
        return no(f"{why}; but no lint finding a generator can act on: the baseline first")
    return {"concurrent": True, "reason": why}


FEATURES_KEY = "features:1"  # bumped when what is looked for changes


def _features(
    target: Target,
    commit: str,
    tests: TestReport,
    *,
    history: History,
    tree: Callable[[], Path],
    report: PhaseReport,
) -> list[Finding]:
    """The feature findings at `commit` (features.py): from the cache, or looked for once. They
    depend on the test run there (which tests xfailed), so the test command is in the key."""
    key = f"{FEATURES_KEY}:{resolve_test_command(target.config, target.root).key}"
    cached = history.get_baseline(target.key, commit, key)
    if cached is not None:
        return [Finding.from_dict(f) for f in cached["findings"]]
    report.progress("looking for the features the repository documents")
    found = feature_area.feature_findings(tests, tree())
    history.put_baseline(target.key, commit, key, {"findings": [f.to_dict() for f in found]})
    return found
