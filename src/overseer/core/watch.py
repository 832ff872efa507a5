"""The post-promotion watch: once a change is on the target branch, its tests (and benchmark)
run again, and a regression is reverted by the system.

What is checked is the promoted commit against its parent — the branch as it was just before —
so a later commit on top is never blamed on the change. A regression (a test that passed
before and now fails for good, or a benchmark slower than the policy allows) is reverted with a
new commit, recorded as rolled back by `overseer (post-promotion watch)` with the reason, and
counted by the circuit breaker. When newer commits sit on top and the revert conflicts, nothing
is forced: the attempt is marked `regressed` for a human, and an event says so.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from overseer.base.clock import iso
from overseer.core.analyze import AnalysisFailed, baseline_tests
from overseer.core.context import Actor, Context
from overseer.core.evaluate.ci import ci_evaluation
from overseer.core.evaluate.compare import compare
from overseer.core.evaluate.measure import commit_tree, judge_performance, measure_performance
from overseer.core.learn.outcomes import record_outcome
from overseer.core.lifecycle import ActionRefused, move, promote_attempt, revert_promoted
from overseer.core.plumbing.bus import PhaseReport
from overseer.core.plumbing.repo import RepoError
from overseer.core.plumbing.testrun import run_tests
from overseer.core.safety.ratelimit import trip_breaker_if_needed
from overseer.vocabulary import AttemptStatus, Phase, RegressionFound, committed

log = logging.getLogger(__name__)

WATCH = Actor("overseer (post-promotion watch)", -1)


def promote_and_watch(ctx: Context, improvement_id: str) -> tuple[AttemptStatus, str | None]:
    """Promote the attempt (lifecycle.promote_attempt) and, where the target asks for it,
    check it right away on the branch; the status it ends in, and why."""
    status, reason = promote_attempt(ctx, improvement_id)
    if status is not AttemptStatus.PROMOTED or not ctx.target.config.watch_after_promotion:
        return status, reason
    watch_promotion(ctx, improvement_id)
    row = ctx.history.get(improvement_id)
    return row["status"], row.get("failure_reason") or row.get("rollback_reason")


def watch_promotion(ctx: Context, improvement_id: str) -> str:
    """Check one promoted change; returns ok | reverted | regressed | skipped.

    The caller holds the target's lock.
    """
    history, repo = ctx.history, ctx.repo()
    row = history.get(improvement_id)
    commit = committed(row)
    try:
        parent = repo.git("rev-parse", f"{commit}^")
    except RepoError:
        history.update_attempt(
            improvement_id, watch={"verdict": "skipped", "why": "no parent commit"}
        )
        return "skipped"
    # Part of EVALUATE (promotion, the check after it, a revert): progress, not a new phase.
    report = PhaseReport(ctx.bus, Phase.EVALUATE, row["cycle_id"], improvement_id)
    report.progress(f"post-promotion check of {commit[:7]} against {parent[:7]}")
    with commit_tree(ctx, f"watch-{improvement_id}", commit) as tree:
        try:
            before, _ = baseline_tests(
                ctx.target,
                parent,
                history=history,
                make_tree=lambda: _parent_tree(ctx, improvement_id, parent),
                report=report,
                cancel=ctx.stop.cancelled,
                bytecode=ctx.bytecode(),
            )
        except AnalysisFailed as exc:
            # The parent cannot be evaluated (its baseline is usually cached from ANALYZE, so
            # something outside the repository broke): no evidence either way, no revert.
            history.update_attempt(
                improvement_id, watch={"verdict": "skipped", "why": str(exc), "at": history.now()}
            )
            report.progress(f"post-promotion check skipped: {exc}")
            return "skipped"
        finally:
            _drop_parent_tree(ctx, improvement_id)
        cfg = ctx.target.config
        if cfg.ci is not None:  # teams whose tests run elsewhere: their CI judges the branch
            evaluation = ci_evaluation(
                ctx, improvement_id, ctx.target.branch, commit, tree, before, report
            )
        else:
            evaluation = compare(
                before,
                run_tests(
                    cfg, ctx.target.root, tree, cancel=ctx.stop.cancelled, bytecode=ctx.bytecode()
                ),
                min_tests=cfg.min_tests,
            )
        if evaluation.unrunnable:
            # The test command did not even start (the environment changed since the change
            # was tested): no evidence either way, no revert, as when the parent cannot be.
            why = f"the test command could not run: {evaluation.unrunnable}"
            history.update_attempt(
                improvement_id, watch={"verdict": "skipped", "why": why, "at": history.now()}
            )
            report.progress(f"post-promotion check skipped: {why}")
            return "skipped"
        if ctx.target.config.benchmark_command and evaluation.passed:
            with commit_tree(ctx, f"watch-base-{improvement_id}", parent) as base:
                judge_performance(ctx, evaluation, measure_performance(ctx, base, tree, report))
    watch: dict[str, Any] = {
        "at": history.now(),
        "commit": commit,
        "parent": parent,
        "tests": evaluation.summary(),
        "new_failures": evaluation.new_failures,
        "flaky": evaluation.flaky,
        "benchmark": evaluation.benchmark,
        "verdict": "ok" if evaluation.passed else "regression",
    }
    if evaluation.passed:
        history.update_attempt(improvement_id, watch=watch)
        report.progress(f"post-promotion check: still good ({evaluation.summary()})")
        return "ok"
    reason = "regression after promotion: " + "; ".join(evaluation.reasons)
    report.progress(reason)
    try:
        revert_promoted(ctx, improvement_id, WATCH, reason)
    except ActionRefused as exc:
        watch["verdict"] = "regression; the revert needs a human"
        move(
            ctx,
            improvement_id,
            AttemptStatus.REGRESSED,
            reason=f"{reason}. It was not reverted: {exc}",
            watch=watch,
        )
        ctx.bus.emit(
            RegressionFound(
                improvement_id=improvement_id,
                reason=reason,
                action="needs a human",
                detail=str(exc),
            )
        )
        return "regressed"
    watch["verdict"] = "regression; reverted"
    history.update_attempt(improvement_id, watch=watch)
    ctx.bus.emit(
        RegressionFound(improvement_id=improvement_id, reason=reason, action="reverted", detail="")
    )
    return "reverted"


def _parent_tree(ctx: Context, improvement_id: str, parent: str) -> Path:
    tree = ctx.worktree_path(f"watch-parent-{improvement_id}")
    ctx.repo().add_worktree(tree, parent, branch=None)
    return tree


def _drop_parent_tree(ctx: Context, improvement_id: str) -> None:
    tree = ctx.worktree_path(f"watch-parent-{improvement_id}")
    if tree.exists():
        ctx.repo().remove_worktree(tree)


def watch_pending(ctx: Context, *, limit: int = 20) -> list[str]:
    """Promotions of the last day a stopped or killed run never checked: checked now."""
    done = []
    since = iso(ctx.clock.now() - timedelta(days=1))
    for row in ctx.history.attempts(
        target=ctx.target.name, statuses=(AttemptStatus.PROMOTED,), limit=limit
    ):
        if row.get("watch") or row.get("dry_run") or not row.get("was_deployed"):
            continue
        if (row.get("promoted_at") or "") < since:
            continue
        iid = row["improvement_id"]
        done.append(iid)
        if watch_promotion(ctx, iid) == "regressed":
            # Its outcome was learned as kept when it was promoted; in a cycle LEARN follows
            # the watch, here it must be learned again (a revert does that itself).
            record_outcome(ctx.history, ctx.history.get(iid))
            trip_breaker_if_needed(ctx.history, ctx.bus, ctx.policy, ctx.target.name)
    return done
