"""What a human does to an attempt: approve, reject, roll back. Each is recorded with who,
when and why, and each takes the target's lock, like a cycle."""

from __future__ import annotations

from typing import Any

from overseer.base.clock import parse_iso
from overseer.core.context import SYSTEM, Actor, Context
from overseer.core.cycle import (
    finish_attempt,
    new_id,
    promote_attempt,
    refit_predictor,
    remove_attempt_tree,
)
from overseer.core.deploy.commit import ROLLBACK_TRAILER, TRAILER
from overseer.core.deploy.promote import RevertConflict, advance_branch, make_revert, push
from overseer.core.learn.outcomes import record_outcome
from overseer.core.plumbing.bus import EventBus
from overseer.core.record.history import (
    AWAITING_APPROVAL,
    EXPIRED,
    PROMOTED,
    READY_TO_PROMOTE,
    REGRESSED,
    REJECTED,
    ROLLED_BACK,
    WAITING,
    History,
)
from overseer.core.safety.ratelimit import trip_breaker_if_needed
from overseer.vocabulary import (
    ApprovalExpired,
    ChangeApproved,
    ChangeRejected,
    ChangeRolledBack,
    DaemonPaused,
    DaemonResumed,
)


class ActionRefused(Exception):
    """The action does not apply to this attempt now; the message says why and what to do."""


def record_approval(
    ctx: Context, improvement_id: str, actor: Actor, reason: str | None = None
) -> dict[str, Any]:
    """Record a human's approval; the attempt becomes ready to promote.

    Recorded first and on its own, so a decision is never lost: if the promotion cannot run
    now (a cycle holds the target, the daemon stops), the next cycle promotes it.
    """
    history = ctx.history
    row = history.get(improvement_id)
    status = row["status"]
    if status not in WAITING:
        raise ActionRefused(f"attempt {improvement_id[:8]} is {status}, not awaiting approval")
    since = row.get("awaiting_since") or row.get("started_at")
    expiry = ctx.approval_expiry
    if status == AWAITING_APPROVAL and expiry and since:
        waited = (ctx.clock.now() - parse_iso(since)).total_seconds()
        if waited >= expiry:
            # The housekeeping may not have run yet (or no daemon runs): too late is too late.
            raise ActionRefused(
                f"attempt {improvement_id[:8]} waited for a decision since {since}, longer than "
                f"approvers.expire_after ({expiry:g} s): its approval expired and it will not be "
                "promoted; the next cycle may propose it again"
            )
    if status == AWAITING_APPROVAL or not row.get("approved_by"):
        history.add_approval(improvement_id, "approved", actor.user, actor.uid, reason)
        history.update_attempt(
            improvement_id,
            approved_by=actor.user,
            status=READY_TO_PROMOTE,
            failure_reason=f"approved by {actor.user}; promotion pending",
        )
        ctx.bus.emit(ChangeApproved(improvement_id=improvement_id, user=actor.user, reason=reason))
    return history.get(improvement_id)


def promote_approved(ctx: Context, improvement_id: str) -> dict[str, Any]:
    """Promote an approved attempt (under the target's lock, held by the caller)."""
    row = ctx.history.get(improvement_id)
    if row["status"] != READY_TO_PROMOTE:
        return row  # already settled (promoted by a cycle, rejected, expired)
    promote_attempt(ctx, improvement_id)
    finish_attempt(ctx, improvement_id)
    return ctx.history.get(improvement_id)


def approve(
    ctx: Context, improvement_id: str, actor: Actor, reason: str | None = None
) -> dict[str, Any]:
    with ctx.lock(wait=5.0):
        if ctx.approval_expiry:
            expire_approvals(ctx, ctx.approval_expiry)  # recorded as expired, then refused
        record_approval(ctx, improvement_id, actor, reason)
        return promote_approved(ctx, improvement_id)


def record_rejection(
    ctx: Context, improvement_id: str, actor: Actor, reason: str
) -> dict[str, Any]:
    """Record a human's rejection; the branch and worktree go with `finish_rejection`."""
    if not reason or not reason.strip():
        raise ActionRefused(
            "a rejection needs a reason (--reason); it is kept and shown next to similar proposals"
        )
    history = ctx.history
    row = history.get(improvement_id)
    if row["status"] not in WAITING:
        raise ActionRefused(
            f"attempt {improvement_id[:8]} is {row['status']}, not awaiting a decision"
        )
    history.add_approval(improvement_id, "rejected", actor.user, actor.uid, reason)
    history.update_attempt(
        improvement_id,
        status=REJECTED,
        failure_reason=f"rejected by {actor.user}: {reason}",
        completed_at=history.now(),
    )
    ctx.bus.emit(ChangeRejected(improvement_id=improvement_id, user=actor.user, reason=reason))
    return history.get(improvement_id)


def finish_rejection(ctx: Context, improvement_id: str) -> dict[str, Any]:
    remove_attempt_tree(ctx, improvement_id)
    finish_attempt(ctx, improvement_id)
    return ctx.history.get(improvement_id)


def reject(ctx: Context, improvement_id: str, actor: Actor, reason: str) -> dict[str, Any]:
    with ctx.lock(wait=5.0):
        record_rejection(ctx, improvement_id, actor, reason)
        return finish_rejection(ctx, improvement_id)


def expire_approvals(ctx: Context, after_seconds: float) -> list[str]:
    """Close attempts that waited for a decision longer than allowed: never promoted silently."""
    history = ctx.history
    now = ctx.clock.now()
    expired = []
    for row in history.attempts(target=ctx.target.name, statuses=(AWAITING_APPROVAL,)):
        since = row.get("awaiting_since") or row.get("started_at")
        if not since or (now - parse_iso(since)).total_seconds() < after_seconds:
            continue
        iid = row["improvement_id"]
        history.add_approval(
            iid, "expired", SYSTEM.user, SYSTEM.uid, f"no decision within {after_seconds:.0f} s"
        )
        history.update_attempt(
            iid,
            status=EXPIRED,
            failure_reason=f"approval expired: no decision since {since}",
            completed_at=history.now(),
        )
        ctx.bus.emit(ApprovalExpired(improvement_id=iid, waited=since))
        remove_attempt_tree(ctx, iid)
        finish_attempt(ctx, iid)
        expired.append(iid)
    return expired


def set_paused(
    history: History, bus: EventBus, actor: Actor, paused: bool, reason: str | None = None
) -> None:
    """The kill switch, kept in the history database so it survives restarts."""
    if paused:
        history.set_control(
            "paused", {"user": actor.user, "uid": actor.uid, "reason": reason, "at": history.now()}
        )
        bus.emit(DaemonPaused(user=actor.user, reason=reason))
    else:
        history.set_control("paused", None)
        # The circuit breaker counts failures since this moment, not before it.
        history.set_control("resumed", {"user": actor.user, "uid": actor.uid, "at": history.now()})
        bus.emit(DaemonResumed(user=actor.user))


def rollback(
    ctx: Context, improvement_id: str, actor: Actor, reason: str | None = None
) -> dict[str, Any]:
    """Revert a promoted change (or one the post-promotion watch could not revert)."""
    with ctx.lock(wait=5.0):
        return revert_promoted(ctx, improvement_id, actor, reason or "rolled back by hand")


def revert_promoted(ctx: Context, improvement_id: str, actor: Actor, reason: str) -> dict[str, Any]:
    """Revert a promoted change with a new commit on the target branch (history is not rewritten).

    The branch fast-forwards to the revert commit. Where it is checked out, git's own check
    guarantees no uncommitted change there is overwritten; if git refuses, nothing moves and
    the message says which files are in the way.
    """
    history, target = ctx.history, ctx.target
    row = history.get(improvement_id)
    if row["status"] not in (PROMOTED, REGRESSED) or not row["was_deployed"]:
        raise ActionRefused(
            f"attempt {improvement_id[:8]} is {row['status']}; only a promoted change can be rolled back"
        )
    repo = ctx.repo()
    commit = row["git_commit_hash"]
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
    history.update_attempt(
        improvement_id,
        status=ROLLED_BACK,
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
