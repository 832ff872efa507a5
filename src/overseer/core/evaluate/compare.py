"""EVALUATE: does the candidate keep every test that passed at its base passing?

The candidate's tests run in its own worktree and are compared test by test with the cached
baseline of its base commit. A candidate that adds a failing test, loses a test (skipped,
xfailed, deselected or absent where it passed), times out, or whose run cannot be evaluated
(nothing collected, collection errors, pytest stopped, no per-test report) does not pass.
Failing tests that already failed at the base are not held against it. A feature for an
xfail test (analyze/features.py) passes only if that test now passes: `required`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overseer.core.plumbing.testrun import SHELL_STATUS, TestReport, run_tests

if TYPE_CHECKING:
    from overseer.core.context import Context


@dataclass
class Evaluation:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    new_failures: list[str] = field(default_factory=list)
    # Of those, the tests the change itself added (absent at the base): said apart, for a test
    # that did not exist did not pass before.
    added_failing: list[str] = field(default_factory=list)
    # Tests that passed at the base and did not pass on the candidate, without failing:
    # test id → what became of it (skipped, xfailed, absent).
    lost: dict[str, str] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)
    # The tests the change must make pass (a feature's formerly xfailing test) → what they did
    # on the candidate: passed, failed, xfailed, absent, flaky …
    required: dict[str, str] = field(default_factory=dict)
    flaky: list[str] = field(default_factory=list)  # flipped when run again: not counted
    # What the test report says of each test named above that did not pass on the candidate
    # (its failure message, redacted at capture): what a model is shown to repair its change.
    messages: dict[str, str] = field(default_factory=dict)
    tests_passed: int = 0
    tests_failed: int = 0
    tests_skipped: int = 0
    baseline: dict[str, int] = field(default_factory=dict)
    performance_delta: float | None = None
    benchmark: dict[str, Any] | None = None
    ci: dict[str, Any] | None = None  # an external CI's polls, when it judged the change
    output_tail: str = ""
    #: the test command could not even start on the candidate (not found, not executable):
    #: why. The environment's problem, not the change's: it is not held against it.
    unrunnable: str | None = None
    # New tests (evaluate/proving.py): collected, passed reliably, raised coverage, and why not.
    proof: dict[str, Any] | None = None
    #: the baseline's tests, run at the same time as the candidate's, cannot be evaluated:
    #: why, and the command. The target's problem, not the change's (as when ANALYZE finds so).
    baseline_not_evaluable: str | None = None
    baseline_command: str = ""
    #: whether the baseline's and the candidate's tests ran at once, why, and when each ran
    concurrency: dict[str, Any] | None = None
    #: the candidate's Python files, and how many came compiled from the target's bytecode cache
    compiled: dict[str, int] | None = None
    #: where the candidate's test run could write, or why it was not confined
    confined: str | None = None

    def summary(self) -> str:
        if self.ci is not None and not self.tests_passed and not self.tests_failed:
            polls = self.ci.get("polls") or []
            verdict = polls[-1]["status"] if polls else "no verdict"
            text = f"CI: {verdict} after {len(polls)} poll(s)"
            return text if self.passed else text + " — " + "; ".join(self.reasons)
        text = f"{self.tests_passed} passed, {self.tests_failed} failed"
        if self.flaky:
            text += f", {len(self.flaky)} flaky (not counted)"
        text += f" (baseline {self.baseline.get('passed', 0)} passed, {self.baseline.get('failed', 0)} failed)"
        if self.required:
            made = sum(1 for what in self.required.values() if what == "passed")
            text += f", {made} of {len(self.required)} feature test(s) passed"
        perf = self.benchmark or {}
        if perf.get("verdict") in ("faster", "slower"):
            text += f", {perf['verdict']} {abs(perf['delta']):.1f} %"
        elif perf.get("verdict") == "no clear difference":
            text += f", performance within noise ({perf['low']:+.1f} … {perf['high']:+.1f} %)"
        elif perf.get("error"):
            text += ", performance unknown"
        if self.proof is not None:
            text += ", " + proof_text(self.proof)
        if not self.passed:
            text += " — " + "; ".join(self.reasons)
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": self.reasons,
            "new_failures": self.new_failures,
            "added_failing": self.added_failing,
            "lost": self.lost,
            "fixed": self.fixed,
            "required": self.required,
            "flaky": self.flaky,
            "messages": self.messages,
            "tests_passed": self.tests_passed,
            "tests_failed": self.tests_failed,
            "tests_skipped": self.tests_skipped,
            "baseline": self.baseline,
            "performance_delta": self.performance_delta,
            "benchmark": self.benchmark,
            "ci": self.ci,
            "output_tail": self.output_tail,
            "unrunnable": self.unrunnable,
            "proof": self.proof,
            "baseline_not_evaluable": self.baseline_not_evaluable,
            "concurrency": self.concurrency,
            "compiled": self.compiled,
            "confined": self.confined,
        }


def compare(
    baseline: TestReport,
    candidate: TestReport,
    *,
    min_tests: int = 1,
    required: Sequence[str] = (),
) -> Evaluation:
    """The candidate's run against the baseline's, test by test.

    No evaluation, no pass: a candidate whose run is not evaluable (nothing collected, a file
    that does not import, pytest stopped, no per-test report) fails, and so does one that
    loses a test — a test that passed at the base and is now failed, errored, skipped,
    xfailed, deselected or absent. A baseline that is not evaluable is refused earlier, by
    ANALYZE (it is the target's problem, not the change's); here it fails the comparison too.
    Each test in `required` must pass on the candidate, and not merely on a second run.
    """
    flaky = set(baseline.flaky) | set(candidate.flaky)
    ev = Evaluation(
        passed=True,
        tests_passed=candidate.passed,
        tests_failed=candidate.failed,
        tests_skipped=candidate.skipped,
        baseline={
            "passed": baseline.passed,
            "failed": baseline.failed,
            "skipped": baseline.skipped,
        },
        output_tail=candidate.output_tail[-4000:],
        flaky=sorted(flaky),
        compiled=candidate.compiled,
        confined=candidate.confined,
    )
    if candidate.timed_out:
        ev.passed = False
        ev.reasons.append(candidate.describe())
        return ev
    for side, report in (("baseline", baseline), ("candidate", candidate)):
        why = report.not_evaluable(min_tests)
        if why:
            ev.passed = False
            ev.reasons.append(f"the {side}'s test run cannot be evaluated: {why}")
            if side == "candidate" and report.returncode in SHELL_STATUS:
                ev.unrunnable = why
    if not ev.passed:
        return ev
    failing_before = baseline.failing
    failing_after = candidate.failing
    passed_after = candidate.ids("passed")
    # A required test did not pass before either (it xfailed): said apart, below.
    ev.new_failures = sorted(failing_after - failing_before - flaky - set(required))
    ev.lost = {
        test: candidate.cases[test].outcome if test in candidate.cases else "absent"
        for test in sorted(baseline.ids("passed") - passed_after - flaky - set(ev.new_failures))
    }
    ev.fixed = sorted((failing_before & passed_after) - flaky)
    if ev.new_failures:
        ev.passed = False
        ev.reasons += failure_reasons(baseline, ev.new_failures)
        ev.added_failing = [t for t in ev.new_failures if t not in baseline.cases]
    if ev.lost:
        ev.passed = False
        shown = ", ".join(f"{test} ({what})" for test, what in list(ev.lost.items())[:5])
        ev.reasons.append(f"{len(ev.lost)} test(s) that passed before did not pass: {shown}")
    ev.required = {
        test: "flaky"
        if test in candidate.flaky
        else candidate.cases[test].outcome
        if test in candidate.cases
        else "absent"
        for test in required
    }
    short = {test: what for test, what in ev.required.items() if what != "passed"}
    if short:
        ev.passed = False
        shown = ", ".join(f"{test} ({what})" for test, what in list(short.items())[:5])
        ev.reasons.append(
            f"the test(s) this feature is for did not pass without their xfail mark: {shown}"
        )
    named = [*ev.new_failures, *ev.lost, *short]
    ev.messages = {
        test: message
        for test in named
        if test in candidate.cases and (message := candidate.cases[test].message)
    }
    if not candidate.ok and not candidate.ids("failed", "error") and baseline.ok:
        ev.passed = False
        ev.reasons.append(
            f"the test run failed (exit status {candidate.returncode}) without a failing test"
        )
    return ev


def failure_reasons(baseline: TestReport, failing: Sequence[str]) -> list[str]:
    """Why tests that fail on the candidate and did not at the base fail it, in words true of
    each: a test that passed before, a test the change added, one that was skipped (or
    xfailed) before."""
    passed_before = baseline.ids("passed")
    added = [t for t in failing if t not in baseline.cases]
    was_passing = [t for t in failing if t in passed_before]
    other = [t for t in failing if t in baseline.cases and t not in passed_before]
    reasons = []
    if was_passing:
        reasons.append(
            f"{len(was_passing)} test(s) fail that passed before: {', '.join(was_passing[:5])}"
        )
    if added:
        reasons.append(f"{len(added)} new test(s) the change added fail: {', '.join(added[:5])}")
    if other:
        shown = ", ".join(f"{t} ({baseline.cases[t].outcome} before)" for t in other[:5])
        reasons.append(f"{len(other)} test(s) fail that did not fail before: {shown}")
    return reasons


def evaluate_tree(
    ctx: Context, tree: Path, baseline: TestReport, report: Any, required: Sequence[str] = ()
) -> Evaluation:
    report.progress("running tests on the candidate")
    candidate = run_tests(
        ctx.target.config,
        ctx.target.root,
        tree,
        on_progress=lambda done, total: report.progress("tests", done, total),
        cancel=ctx.stop.cancelled,
        bytecode=ctx.bytecode(),
    )
    return compare(baseline, candidate, min_tests=ctx.target.config.min_tests, required=required)


def proof_text(proof: dict[str, Any]) -> str:
    """One line for a person: how far the new tests got."""
    if not proof.get("collected"):
        return "new tests: not collected"
    text = f"new tests: {proof.get('passed_runs', 0)}/{proof.get('runs')} runs passed"
    if proof.get("raised"):
        text += (
            f", {len(proof.get('newly_covered') or [])} more line(s) of {proof.get('module')} "
            f"covered ({proof.get('covered_before')} → {proof.get('covered_after')} %)"
        )
    elif proof.get("reliable"):
        text += ", no coverage raised"
    return text
