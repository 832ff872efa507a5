"""An external CI as EVALUATE's judge, for teams whose tests run elsewhere.

The candidate branch is pushed (never forced) to the target's remote; a configured status
command — a `gh` or `glab` call, say — is then polled, with a growing wait and a time limit,
until it says pass or fail. Each poll is recorded. The command may also name a JUnit report,
whose per-test results are then compared like a local run's. The local test run stays the
default; a dry run, which pushes nothing, always uses it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from overseer.core.context import Context
from overseer.core.deploy.promote import push
from overseer.core.evaluate.compare import Evaluation, compare
from overseer.core.plumbing.sandbox import run_command
from overseer.core.plumbing.stop import CycleStopped
from overseer.core.plumbing.testrun import TestReport, parse_junit
from overseer.vocabulary import CIPolled

POLL_TIMEOUT_SECONDS = 120.0


def read_status(output: str) -> tuple[str, str | None]:
    """(pass | fail | pending | unknown, a JUnit report's path or None) from what it printed."""
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            status = str(data.get("status", "")).lower()
            return (status if status in ("pass", "fail", "pending") else "unknown"), data.get(
                "junit"
            )
        word = line.lower()
        if word in ("pass", "passed", "success", "ok"):
            return "pass", None
        if word in ("fail", "failed", "failure", "error"):
            return "fail", None
        if word in ("pending", "running", "queued", "in_progress"):
            return "pending", None
    return "unknown", None


def ci_evaluation(
    ctx: Context,
    improvement_id: str,
    branch: str,
    commit: str,
    tree: Path,
    baseline: TestReport,
    report: Any,
    required: Sequence[str] = (),
) -> Evaluation:
    """`required`: tests the change must make pass (compare.compare); only a CI that reports
    per-test results can show them passing."""
    cfg = ctx.target.config
    assert cfg.ci is not None and cfg.push
    ci = cfg.ci
    pushed = push(ctx.repo(), cfg.push, branch)
    polls: list[dict[str, Any]] = []
    evaluation = Evaluation(
        passed=False, baseline={"passed": baseline.passed, "failed": baseline.failed}
    )
    evaluation.ci = {"pushed": pushed, "polls": polls}
    if not pushed.startswith("pushed"):
        evaluation.reasons.append(f"the candidate branch could not be pushed for CI: {pushed}")
        return evaluation
    env = {
        **os.environ,
        **cfg.env,
        "OVERSEER_BRANCH": branch,
        "OVERSEER_COMMIT": commit,
        "OVERSEER_REMOTE": str(cfg.push),
        "OVERSEER_IMPROVEMENT_ID": improvement_id,
    }
    started = ctx.clock.monotonic()
    wait = ci.first_poll
    while True:
        result = run_command(
            ci.status_command, cwd=tree, env=env, timeout=POLL_TIMEOUT_SECONDS, kind="ci"
        )
        status, junit = read_status(result.output_tail) if result.ok else ("unknown", None)
        polls.append(
            {"at": ctx.history.now(), "status": status, "output": result.output_tail[-300:]}
        )
        ctx.bus.emit(
            CIPolled(
                improvement_id=improvement_id,
                commit=commit,
                poll=len(polls),
                status=status,
                output=result.output_tail[-300:],
            )
        )
        report.progress(f"CI: {status} (poll {len(polls)})")
        if status in ("pass", "fail"):
            break
        elapsed = ctx.clock.monotonic() - started
        if elapsed + wait > ci.timeout:
            evaluation.reasons.append(
                f"CI gave no verdict within {ci.timeout:g} s ({len(polls)} polls; the last said {status})"
            )
            return evaluation
        if ctx.stop.cancelled.wait(wait):
            raise CycleStopped("cancelled while waiting for CI")
        wait = min(wait * 2, ci.max_poll)
    cases = parse_junit(tree / junit) if junit else None
    if cases is not None:  # per-test results: judged like a local run's
        code = 0 if status == "pass" else 1
        evaluation = compare(
            baseline,
            TestReport("ci", "external CI", code, False, 0.0, "", True, cases),
            min_tests=ctx.target.config.min_tests,
            required=required,
        )
    else:
        evaluation.passed = status == "pass"
        if required:
            evaluation.passed = False
            evaluation.reasons.append(
                "CI reported no per-test results, so the test(s) this feature is for cannot be "
                f"seen passing: {', '.join(required[:5])}"
            )
    evaluation.ci = {"pushed": pushed, "polls": polls}
    if status == "fail":
        evaluation.passed = False
        evaluation.reasons.append(f"CI reported fail after {len(polls)} poll(s)")
    return evaluation
