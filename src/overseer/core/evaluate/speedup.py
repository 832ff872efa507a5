"""EVALUATE for a profiled speed-up (analyze/profile.py): the slow test, or the benchmark
that regressed, must be faster.

The test (or the benchmark command) runs on the base and on the candidate in turn (A B A B …,
`benchmark_runs` each, in worktrees and sandboxes of overseer's), the test's duration from
pytest's report (or the benchmark's metric) is measured, and perf.py's comparison judges it:
the candidate passes only when it is called *faster* — the bootstrap interval above zero, the
permutation test agreeing, the effect at least `benchmark_min_effect` percent. A change within
noise, or slower, does not pass: a speed-up that cannot be measured is not one. The tests must
still pass, as always (checked first).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from overseer.core.analyze.benchmark import REGRESSION
from overseer.core.analyze.findings import Finding
from overseer.core.analyze.profile import SLOW_KINDS
from overseer.core.context import Context
from overseer.core.evaluate.compare import Evaluation
from overseer.core.evaluate.measure import commit_tree, measure_performance, run_only
from overseer.core.evaluate.perf import PerfComparison, interleaved

METRIC = "seconds"


def applies(finding: Finding) -> bool:
    """A slow test or a benchmark regression that was profiled: a speed-up the model was shown
    where to make."""
    return finding.kind in (*SLOW_KINDS, REGRESSION) and bool(finding.details.get("hot"))


def times_the_benchmark(finding: Finding) -> bool:
    """Whether judge() runs the benchmark (then the benchmark's usual no-slower check is in
    it: it must be faster)."""
    return applies(finding) and finding.kind == REGRESSION


def measure_test(
    ctx: Context, before: Path, after: Path, finding: Finding, report: Any = None
) -> PerfComparison:
    cfg = ctx.target.config
    test = finding.details["test"]
    runs = 0

    def runner(tree: Path) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            nonlocal runs
            runs += 1
            if report is not None:
                report.progress(f"timing {test}", runs, cfg.benchmark_runs * 2)
            result = run_only(ctx, tree, [finding.file or ""])
            case = result.cases.get(test)
            if case is None or case.outcome != "passed":
                what = case.outcome if case is not None else "absent"
                return {"ok": False, "error": f"{test} {what}"}
            return {"ok": True, "metrics": {METRIC: case.duration}}

        return run

    return interleaved(
        runner(before),
        runner(after),
        cfg.benchmark_runs,
        METRIC,
        min_effect=cfg.benchmark_min_effect,
    )


def judge(
    ctx: Context,
    evaluation: Evaluation,
    finding: Finding,
    base: str,
    tree: Path,
    name: str,
    report: Any = None,
) -> None:
    """Into `evaluation`: the slow test (or the benchmark) timed before and after; not
    faster, not passed."""
    if not evaluation.passed:
        return
    with commit_tree(ctx, f"time-{name}", base) as base_tree:
        if times_the_benchmark(finding):
            perf = measure_performance(ctx, base_tree, tree, report)
            what = f"the benchmark's {perf.metric or 'metric'}"
        else:
            perf = measure_test(ctx, base_tree, tree, finding, report)
            what = finding.details["test"]
    evaluation.benchmark = perf.to_dict()
    evaluation.performance_delta = perf.performance_delta
    if perf.verdict != "faster":
        evaluation.passed = False
        evaluation.reasons.append(f"{what} is not faster beyond noise: {perf.describe()}")
