"""The baseline's and the candidate's test runs at once, for a lint finding.

A lint finding needs no test results to be chosen or generated: ANALYZE runs ruff and, when
the baseline's tests are not cached and the machine has room (`evaluate_concurrently`), leaves
them to EVALUATE, which runs them next to the candidate's, each in its own worktree and process
group, each taking a slot of the process's budget of test runs (plumbing/slots.py). Then the
candidate is compared with the baseline exactly as when the baseline ran first; a baseline that
cannot be evaluated settles nothing against the change (the target's problem, as in ANALYZE).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overseer.config import TargetConfig
from overseer.core.analyze import AnalysisFailed
from overseer.core.evaluate.compare import Evaluation, compare
from overseer.core.plumbing.bus import SideRunReport
from overseer.core.plumbing.slots import TEST_SLOTS, TestSlots
from overseer.core.plumbing.testrun import TestReport, run_tests

if TYPE_CHECKING:
    from overseer.core.analyze import Analysis
    from overseer.core.context import Context

# Two runs at once gain only when a second core is there for the second run; on a busy
# machine they would only share the cores the one run would have had, and slow each other.
MIN_FREE_CORES = 1.5
# Memory wanted for two test runs when the target sets no memory limit.
DEFAULT_RUN_MB = 1024
# How long the CPU is watched to see how many cores are idle now: the load average lags by a
# minute and counts the cycle's own test runs just finished, so it would refuse every cycle
# that follows another.
SAMPLE_SECONDS = 0.1


def _available_mb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all cores since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    if len(fields) < 5:
        return None
    return fields[3] + fields[4], sum(fields)  # idle + iowait


def _busy_cores(cores: int) -> tuple[float, str]:
    """How many cores are busy now, and how that was seen: the CPU over SAMPLE_SECONDS, or
    the load average where /proc/stat cannot be read."""
    before = _cpu_times()
    if before is not None:
        time.sleep(SAMPLE_SECONDS)
        after = _cpu_times()
        if after is not None and after[1] > before[1]:
            idle = (after[0] - before[0]) / (after[1] - before[1])
            return cores * (1.0 - idle), f"over {SAMPLE_SECONDS:g} s"
    try:
        return os.getloadavg()[0], "by the load average"
    except OSError:
        return 0.0, "not measurable"


def decide(
    config: TargetConfig,
    *,
    slots: TestSlots = TEST_SLOTS,
    cores: int | None = None,
    busy: float | None = None,
    available_mb: float | None = None,
) -> tuple[bool, str]:
    """Whether the two test runs may go at once, and why (recorded with the cycle): with
    `auto`, when two of the process's test slots are free (`daemon.max_test_runs`), a second
    core is idle and the memory for both runs is available."""
    setting = config.evaluate_concurrently
    if setting is True:
        return True, "evaluate_concurrently: true"
    if setting is False:
        return False, "evaluate_concurrently: false"
    free_slots = slots.limit - slots.running
    budget = f"{free_slots} of {slots.limit} test slots free"
    if free_slots < 2:
        return False, f"auto: {budget} (daemon.max_test_runs), two runs need 2"
    cores = cores if cores is not None else os.cpu_count() or 1
    seen = "as given"
    if busy is None:
        busy, seen = _busy_cores(cores)
    free = cores - busy
    idle = f"{free:.1f} of {cores} cores idle {seen}"
    if free < MIN_FREE_CORES:
        return False, f"auto: {idle}, fewer than {MIN_FREE_CORES:g}"
    available_mb = available_mb if available_mb is not None else _available_mb()
    wanted = 2 * (config.memory_limit_mb or DEFAULT_RUN_MB)
    if available_mb is not None and available_mb < wanted:
        return False, (
            f"auto: {available_mb:.0f} MB available, fewer than the {wanted} MB of two runs"
        )
    memory = f", {available_mb:.0f} MB available" if available_mb is not None else ""
    return True, f"auto: {idle}, {budget}{memory}"


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _times(report: TestReport) -> dict[str, Any]:
    return {"started": report.started, "finished": report.finished}


class _Timed:
    """When a run started and finished (wall clock), for the record."""

    def __init__(self) -> None:
        self.started: str | None = None
        self.finished: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"started": self.started, "finished": self.finished}


def evaluate_with_baseline(
    ctx: Context,
    analysis: Analysis,
    tree: Path,
    report: Any,
    *,
    baseline_tree: Callable[[], Any],
    required: Sequence[str] = (),
) -> Evaluation:
    """The candidate's tests in `tree` and the baseline's (in a worktree `baseline_tree()`
    makes, a context manager) at once; then compared as usual. The baseline, once known, is
    the analysis's (and cached) for the rest of the cycle."""
    assert analysis.pending_baseline is not None
    resolve = analysis.pending_baseline
    base_times = _Timed()
    outcome: dict[str, Any] = {}

    def baseline() -> None:
        base_times.started = _stamp()
        try:
            with baseline_tree() as path:
                outcome["report"] = resolve(path, SideRunReport(report, "baseline"))
        except BaseException as exc:  # said in the caller's thread
            outcome["error"] = exc
        finally:
            base_times.finished = _stamp()

    report.progress("running the baseline's and the candidate's tests at once")
    thread = threading.Thread(target=baseline, name="baseline-tests", daemon=True)
    thread.start()
    try:
        candidate: TestReport = run_tests(
            ctx.target.config,
            ctx.target.root,
            tree,
            on_progress=lambda done, total: report.progress("tests", done, total),
            cancel=ctx.stop.cancelled,
            bytecode=ctx.bytecode(),
        )
    finally:
        while thread.is_alive():  # a stop cancels both runs: the baseline's ends soon too
            thread.join(0.2)
    ran: TestReport | None = outcome.get("report")
    concurrency = {
        **(analysis.concurrency or {}),
        # When each test command ran (its slot taken), or, for a baseline that did not say,
        # when its thread did.
        "baseline": _times(ran) if ran is not None else base_times.to_dict(),
        "candidate": _times(candidate),
        "limit": TEST_SLOTS.limit,
    }
    error = outcome.get("error")
    if isinstance(error, AnalysisFailed):
        # The baseline cannot be evaluated: as when ANALYZE finds so, nothing is promoted and
        # nothing is held against the change.
        ev = Evaluation(
            passed=False,
            reasons=[f"the baseline's test run cannot be evaluated: {error.why}"],
            tests_passed=candidate.passed,
            tests_failed=candidate.failed,
            tests_skipped=candidate.skipped,
            output_tail=error.output_tail[-4000:],
            baseline_not_evaluable=error.why,
            baseline_command=error.command,
            concurrency=concurrency,
            compiled=candidate.compiled,
            confined=candidate.confined,
        )
        analysis.pending_baseline = None
        analysis.baseline_failure = error
        return ev
    if error is not None:
        raise error
    tests: TestReport = outcome["report"]
    analysis.tests = tests
    analysis.pending_baseline = None
    ev = compare(tests, candidate, min_tests=ctx.target.config.min_tests, required=required)
    ev.concurrency = concurrency
    return ev
