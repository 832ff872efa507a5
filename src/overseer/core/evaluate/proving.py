"""EVALUATE for new tests (analyze/coverage.py's `uncovered_code`): a test that proves itself.

After the usual comparison (no test that passed is lost), the candidate's new test files run
alone, in its worktree's sandbox like every test run, the filters of Meta's TestGen-LLM:

1. **collected**: they import and pytest finds tests in them;
2. **passed reliably**: every test in them passes, `new_tests.reliability_runs` times in a row
   (a test that passes sometimes is worse than none);
3. **raised coverage**: the first run is under coverage.py, and it runs lines of the finding's
   module that no test ran at the base (the finding's `missing` lines).

The fourth filter, that each test asserts something, is SAFETY's (safety/oracle.py): a test
that asserts nothing never gets here. The first filter that fails fails the candidate, with its
reason; what each stage said is `evaluation.proof` (compare.proof_text says it in one line), which
`overseer stats` counts as a funnel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from overseer.core.analyze import coverage
from overseer.core.analyze.findings import Finding
from overseer.core.evaluate.compare import Evaluation
from overseer.core.evaluate.measure import run_only
from overseer.core.generate.candidate import Candidate
from overseer.core.plumbing.testrun import PYTEST_STOPPED, TestReport
from overseer.core.safety.oracle import is_test_path

if TYPE_CHECKING:
    from pathlib import Path

    from overseer.core.context import Context

STAGES = ("collected", "reliable", "raised")


def applies(finding: Finding) -> bool:
    return coverage.is_test_writing(finding)


def new_test_files(candidate: Candidate) -> list[str]:
    return [c.path for c in candidate.changes if c.before is None and is_test_path(c.path)]


def _not_collected(run: TestReport) -> str | None:
    if run.timed_out:
        return run.describe()
    if run.collection_errors:
        return "it does not import"
    if run.returncode in PYTEST_STOPPED:
        return PYTEST_STOPPED[run.returncode]
    if not run.has_junit or run.tests_run == 0:
        return "pytest found no test in it"
    return None


def _not_passed(run: TestReport) -> str | None:
    """Why not every test of the run passed (a skip is no proof either)."""
    short = {t: c for t, c in run.cases.items() if c.outcome != "passed"}
    if not short and run.ok:
        return None
    if not short:
        return f"the run failed (exit status {run.returncode})"
    test, case = next(iter(sorted(short.items())))
    message = f": {case.message.splitlines()[0][:200]}" if case.message else ""
    return f"{test} {case.outcome}{message}"


def prove(
    ctx: Context, tree: Path, finding: Finding, candidate: Candidate, report: Any
) -> dict[str, Any]:
    """The proof of a candidate's new tests: each stage, and the reason of the first that
    failed (`reason`; None when it is proven)."""
    cfg = ctx.target.config
    runs = cfg.new_tests.reliability_runs
    files = new_test_files(candidate)
    proof: dict[str, Any] = {
        "tests": files,
        "module": finding.file,
        "runs": runs,
        "passed_runs": 0,
        **dict.fromkeys(STAGES, False),
        "reason": None,
    }
    if not files:
        proof["reason"] = "the change adds no new test file"
        return proof
    named = ", ".join(files)
    report.progress(f"running {named} under coverage.py")
    first, measured = coverage.run_with_coverage(
        ctx.target, tree, cancel=ctx.stop.cancelled, only=files
    )
    why = _not_collected(first)
    if why:
        proof["reason"] = f"the new test file(s) {named} did not collect: {why}"
        return proof
    proof["collected"] = True
    proof["collected_tests"] = first.tests_run
    run = first
    for n in range(1, runs + 1):
        if n > 1:
            report.progress(f"running {named}", n, runs)
            run = run_only(ctx, tree, files)
        why = _not_passed(run)
        if why:
            proof["reason"] = (
                f"the new tests are not reliable: they passed {n - 1} run(s) in a row, then "
                f"failed on run {n} of {runs} ({why})"
            )
            return proof
        proof["passed_runs"] = n
    proof["reliable"] = True
    before = set(finding.details.get("missing") or [])
    statements = finding.details.get("statements") or 0
    after = measured.missing(finding.file or "")
    if measured.error or after is None:
        newly: list[int] = []
        proof["coverage_error"] = (
            measured.error or f"{finding.file} was not imported by the new tests"
        )
    else:
        newly = sorted(before - after)
    proof["newly_covered"] = newly
    if statements:
        proof["covered_before"] = round(100 * (1 - len(before) / statements), 1)
        proof["covered_after"] = round(100 * (1 - (len(before) - len(newly)) / statements), 1)
    if not newly:
        proof["reason"] = (
            f"the new tests raise no coverage of {finding.file}: they run none of its "
            f"{len(before)} line(s) no test ran before"
            + (f" ({proof['coverage_error']})" if "coverage_error" in proof else "")
        )
        return proof
    proof["raised"] = True
    return proof


def judge(
    ctx: Context,
    tree: Path,
    finding: Finding,
    candidate: Candidate | None,
    evaluation: Evaluation,
    report: Any,
) -> None:
    """The proof of the new tests, into `evaluation`: a candidate whose tests do not prove
    themselves does not pass, whatever the rest of the suite did."""
    if candidate is None:
        return
    proof = prove(ctx, tree, finding, candidate, report)
    evaluation.proof = proof
    if proof["reason"]:
        evaluation.passed = False
        evaluation.reasons.append(proof["reason"])
