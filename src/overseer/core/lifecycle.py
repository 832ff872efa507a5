"""An attempt's life once its cycle made it: the one place its status changes, and the steps
that settle it — promotion (a rebase and a new test run first when the branch moved), revert,
clean-up, and LEARN and RECORD.

`move` is the only function that writes an attempt's status. It checks the move against
vocabulary.TRANSITIONS, writes the row only if the attempt is still where it was read (another
process may have moved it meanwhile), and emits AttemptMoved, so the event log holds every move
whatever caused it. The cycle (cycle.py), a human's decisions (actions.py), start-up recovery
(recovery.py) and the post-promotion watch (watch.py) all move attempts through it.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overseer.core.analyze import AnalysisFailed, baseline_tests
from overseer.core.analyze.features import required_tests
from overseer.core.context import Actor, Context
from overseer.core.deploy.commit import ROLLBACK_TRAILER, TRAILER, branch_name
from overseer.core.deploy.promote import (
    RevertConflict,
    advance_branch,
    delete_remote_branch,
    make_revert,
    push,
    rebase,
)
from overseer.core.evaluate.compare import evaluate_tree
from overseer.core.learn.outcomes import record_outcome
from overseer.core.plumbing.faults import fault_point
from overseer.core.safety.ratelimit import trip_breaker_if_needed
from overseer.vocabulary import (
    FINAL,
    WAITING,
    AttemptFinished,
    AttemptMoved,
    AttemptRow,
    AttemptStatus,
    ChangePromoted,
    ChangeRolledBack,
    Phase,
    PromotionDeferred,
    check_move,
    committed,
    paused_text,
)

log = logging.getLogger(__name__)


class ActionRefused(Exception):
    """The action does not apply to this attempt now; the message says why and what to do."""


class AttemptMovedMeanwhile(Exception):
    """Another process moved the attempt between reading and writing it; nothing was written."""


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def move(
    ctx: Context,
    improvement_id: str,
    to: AttemptStatus,
    *,
    reason: str | None = None,
    **fields: Any,
) -> AttemptRow:
    """Move an attempt to `to`: the move checked against the table, the row written (with
    `failure_reason=reason` when given, and `fields`), AttemptMoved emitted. Returns the row."""
    history = ctx.history
    before = history.get(improvement_id)["status"]
    check_move(before, to)
    if reason is not None:
        fields["failure_reason"] = reason
    if not history.move(improvement_id, before, to, **fields):
        raise AttemptMovedMeanwhile(
            f"attempt {improvement_id[:8]} is no longer {before}; it was not moved to {to.value}"
        )
    ctx.bus.emit(
        AttemptMoved(improvement_id=improvement_id, before=before, after=to.value, reason=reason)
    )
    return history.get(improvement_id)


def remove_attempt_tree(ctx: Context, improvement_id: str, *, keep_branch: bool = False) -> None:
    repo = ctx.repo()
    tree = ctx.worktree_path(improvement_id)
    if tree.exists():
        repo.remove_worktree(tree)
    if not keep_branch:
        repo.delete_branch(branch_name(improvement_id))
        cfg = ctx.target.config
        if cfg.ci is not None and cfg.push:  # the copy pushed for CI goes too
            delete_remote_branch(repo, cfg.push, branch_name(improvement_id))


def promote_attempt(ctx: Context, improvement_id: str) -> tuple[AttemptStatus, str | None]:
    """Move the target branch to the attempt's commit, or say why it must wait or failed.

    When the branch has moved since the change was made, the change is rebased onto it and
    tested again against the new head's baseline before anything moves.
    """
    row = ctx.history.get(improvement_id)
    try:
        return _promote(ctx, improvement_id, row)
    except Exception:
        # Leave the attempt where it was (waiting, or running for the cycle to close).
        current = ctx.history.get(improvement_id)["status"]
        if current != row["status"]:
            move(ctx, improvement_id, AttemptStatus(row["status"]), reason="the promotion broke")
        raise


def _promote(
    ctx: Context, improvement_id: str, row: AttemptRow
) -> tuple[AttemptStatus, str | None]:
    history, repo, target = ctx.history, ctx.repo(), ctx.target
    paused = ctx.paused()
    if paused:
        reason = f"promotion deferred: {paused_text(paused)}; it promotes after `overseer resume`"
        return _defer(ctx, improvement_id, reason)
    commit = committed(row)
    move(ctx, improvement_id, AttemptStatus.PROMOTING, phase=Phase.EVALUATE.value)
    fault_point("promote:before-advance")
    message = f"overseer: promote {improvement_id}"
    advance = advance_branch(repo, target.branch, commit, require_clean=True, message=message)
    if advance.stale:
        refreshed = _refresh(ctx, improvement_id)
        if refreshed.wait:
            reason = f"promotion deferred: {refreshed.wait}"
            return _defer(ctx, improvement_id, reason)
        if refreshed.failure:
            move(ctx, improvement_id, AttemptStatus.FAILED, reason=refreshed.failure)
            remove_attempt_tree(ctx, improvement_id)
            return AttemptStatus.FAILED, refreshed.failure
        commit = refreshed.commit
        advance = advance_branch(repo, target.branch, commit, require_clean=True, message=message)
    if not advance.moved:
        reason = f"promotion deferred: {advance.reason}"
        return _defer(ctx, improvement_id, reason)
    fault_point("promote:after-advance")
    push_result = None
    if target.config.push:
        push_result = push(repo, target.config.push, target.branch)
        fault_point("promote:after-push")
    move(
        ctx,
        improvement_id,
        AttemptStatus.PROMOTED,
        was_deployed=1,
        promoted_at=history.now(),
        push_result=push_result,
        failure_reason=None,
    )
    fault_point("promote:after-record")
    ctx.bus.emit(
        ChangePromoted(
            improvement_id=improvement_id,
            target=target.name,
            branch=target.branch,
            commit=commit,
            pushed=None if push_result is None else push_result.startswith("pushed"),
        )
    )
    remove_attempt_tree(ctx, improvement_id)
    return AttemptStatus.PROMOTED, None


def _defer(ctx: Context, improvement_id: str, reason: str) -> tuple[AttemptStatus, str]:
    """The change may be promoted and waits (a dirty tree, a pause, an unevaluable head)."""
    move(ctx, improvement_id, AttemptStatus.READY_TO_PROMOTE, reason=reason)
    ctx.bus.emit(PromotionDeferred(improvement_id=improvement_id, reason=reason))
    return AttemptStatus.READY_TO_PROMOTE, reason


@dataclass
class Refreshed:
    """A waiting change brought onto the branch's new head: its new commit, or why not."""

    commit: str = ""
    failure: str | None = None  # the change failed there: settled against it
    wait: str | None = None  # the new head cannot be evaluated: the target's problem, retried


def _refresh(ctx: Context, improvement_id: str) -> Refreshed:
    """Rebase a waiting change onto the branch's new head and test it there again.

    The new head's baseline comes first: when it cannot be evaluated (nothing collected, a
    test file that does not import) that is no fault of the change, which keeps waiting,
    untouched, until the head can be."""
    repo, target = ctx.repo(), ctx.target
    tree = ctx.worktree_path(improvement_id)
    if not tree.exists():
        return Refreshed(
            failure="its worktree is gone, so it cannot be rebased onto the moved branch"
        )
    tip = repo.branch_head(target.branch)
    row = ctx.history.get(improvement_id)
    analysis_tree = ctx.worktree_path(f"baseline-{improvement_id}")

    def make_tree() -> Path:
        repo.add_worktree(analysis_tree, tip, branch=None)
        return analysis_tree

    with ctx.bus.phase(Phase.EVALUATE, row["cycle_id"], improvement_id) as report:
        try:
            baseline, _ = baseline_tests(
                target,
                tip,
                history=ctx.history,
                make_tree=make_tree,
                report=report,
                cancel=ctx.stop.cancelled,
                bytecode=ctx.bytecode(),
            )
        except AnalysisFailed as exc:
            report.fail(str(exc))
            return Refreshed(wait=f"{target.branch} moved to {tip[:7]}, and {exc}")
        finally:
            if analysis_tree.exists():
                repo.remove_worktree(analysis_tree)
        new = rebase(tree, tip, ctx.identity)
        if new is None:
            report.fail("the change no longer applies")
            return Refreshed(
                failure=f"{target.branch} moved to {tip[:7]} and the change no longer applies there"
            )
        evaluation = evaluate_tree(
            ctx, tree, baseline, report, required=required_tests(row.get("finding"))
        )
        report.summary = f"rebased onto {tip[:7]}: " + evaluation.summary()
        if evaluation.unrunnable:
            # Not the change's fault, and not tested: it keeps waiting with its old commit,
            # so the next promotion rebases and tests it again.
            report.fail(report.summary)
            return Refreshed(
                wait=f"{target.branch} moved to {tip[:7]}, and the test command could not run "
                f"on the rebased change: {evaluation.unrunnable}"
            )
    ctx.history.update_attempt(
        improvement_id,
        base_commit=tip,
        git_commit_hash=new,
        tests_passed=evaluation.tests_passed,
        tests_failed=evaluation.tests_failed,
        tests_skipped=evaluation.tests_skipped,
        evaluation=evaluation.to_dict(),
    )
    if not evaluation.passed:
        return Refreshed(failure=f"after rebasing onto {tip[:7]}: " + "; ".join(evaluation.reasons))
    return Refreshed(commit=new)


def revert_promoted(ctx: Context, improvement_id: str, actor: Actor, reason: str) -> AttemptRow:
    """Revert a promoted change with a new commit on the target branch (history is not rewritten).

    The branch fast-forwards to the revert commit. Where it is checked out, git's own check
    guarantees no uncommitted change there is overwritten; if git refuses, nothing moves and
    the message says which files are in the way.
    """
    history, target = ctx.history, ctx.target
    row = history.get(improvement_id)
    if (
        row["status"] not in (AttemptStatus.PROMOTED, AttemptStatus.REGRESSED)
        or not row["was_deployed"]
    ):
        raise ActionRefused(
            f"attempt {improvement_id[:8]} is {row['status']}; only a promoted change can be rolled back"
        )
    repo = ctx.repo()
    commit = committed(row)
    if not repo.is_ancestor(commit, target.branch):
        raise ActionRefused(
            f"commit {commit[:7]} is not on {target.branch} any more; nothing to revert"
        )
    tree = ctx.worktree_path(f"revert-{new_id()}")
    repo.add_worktree(tree, repo.branch_head(target.branch), branch=None)
    try:
        subject = f"Autonomous improvement: {row['change_type']}: {row['summary']}"
        message = (
            f'Revert "{subject}"\n\nThis reverts commit {commit}.\n'
            f"Reason: {reason} (rolled back by {actor.user})\n\n"
            f"{TRAILER}: {improvement_id}\n{ROLLBACK_TRAILER}: {commit}\n"
        )
        try:
            revert = make_revert(tree, commit, message, ctx.identity)
        except RevertConflict as exc:
            raise ActionRefused(
                f"reverting {commit[:7]} conflicts with later commits on {target.branch}; "
                f"nothing was changed, revert it by hand ({exc})"
            ) from None
        advance = advance_branch(
            repo,
            target.branch,
            revert,
            require_clean=False,
            message=f"overseer: roll back {improvement_id}",
        )
        if not advance.moved:
            raise ActionRefused(
                f"the revert commit is ready but {target.branch} was not moved: {advance.reason}"
            )
    finally:
        repo.remove_worktree(tree)
    push_result = push(repo, target.config.push, target.branch) if target.config.push else None
    history.add_approval(improvement_id, "rolled_back", actor.user, actor.uid, reason)
    move(
        ctx,
        improvement_id,
        AttemptStatus.ROLLED_BACK,
        was_rolled_back=1,
        rolled_back_at=history.now(),
        rolled_back_by=actor.user,
        rollback_reason=reason,
        revert_commit_hash=revert,
        push_result=push_result or row.get("push_result"),
    )
    ctx.bus.emit(
        ChangeRolledBack(
            improvement_id=improvement_id, revert_commit=revert, user=actor.user, reason=reason
        )
    )
    record_outcome(history, history.get(improvement_id))
    refit_predictor(ctx)
    trip_breaker_if_needed(history, ctx.bus, ctx.policy, target.name)
    return history.get(improvement_id)


def refit_predictor(ctx: Context) -> str | None:
    """Refit after an outcome (the seed's sp_UpdateModelWeightsFromFeedback); says how it went."""
    from overseer.core.learn.predictor import Predictor

    if ctx.predictor is None:
        ctx.predictor = Predictor(ctx.history, ctx.state.root / "predictor")
    try:
        record = ctx.predictor.refit()
    except Exception as exc:
        log.exception("refitting the success predictor failed")
        return f"refit failed: {exc}"
    if record is None:
        return None
    brier = f", Brier {record['brier']:.3f}" if record.get("brier") is not None else ""
    return f"v{record['version']} on {record['rows']} outcomes{brier}"


def finish_attempt(
    ctx: Context,
    improvement_id: str,
    *,
    cycle_id: str | None = None,
    timings: dict[str, float] | None = None,
) -> None:
    """LEARN and RECORD for an attempt whose outcome is settled (or waiting on a human)."""
    history = ctx.history
    row = history.get(improvement_id)
    cycle_id = cycle_id or row["cycle_id"]
    timings = {**(row.get("phase_timings") or {}), **(timings or {})}
    with ctx.bus.phase(Phase.LEARN, cycle_id, improvement_id) as report:
        history.update_attempt(improvement_id, phase=Phase.LEARN.value)
        if row["status"] in WAITING:
            report.skip("outcome pending: waits for a decision")
        else:
            report.summary = record_outcome(history, row)
            refit = refit_predictor(ctx)
            if refit:
                report.summary += f"; predictor {refit}"
    timings[Phase.LEARN.value] = round(report.duration, 3)
    fault_point("after:LEARN")
    with ctx.bus.phase(Phase.RECORD, cycle_id, improvement_id) as report:
        fields: dict[str, Any] = {"phase": Phase.RECORD.value, "phase_timings": timings}
        if row["status"] in FINAL and not row.get("completed_at"):
            fields["completed_at"] = history.now()
        history.update_attempt(improvement_id, **fields)
        report.summary = f"row {improvement_id[:8]}: {row['status'].replace('_', ' ')}"
    timings[Phase.RECORD.value] = round(report.duration, 3)
    history.update_attempt(improvement_id, phase_timings=timings)
    trip_breaker_if_needed(history, ctx.bus, ctx.policy, ctx.target.name)
    ctx.bus.emit(
        AttemptFinished(
            improvement_id=improvement_id, status=row["status"], reason=row.get("failure_reason")
        )
    )
    fault_point("after:RECORD")
