"""What a human does to an attempt: approve, reject, roll back, pause. Each is recorded with
who, when and why, and each takes the target's lock, like a cycle; the attempt moves through
core/lifecycle.py like any other."""

from __future__ import annotations

from typing import Any

from overseer.base.clock import parse_iso
from overseer.core.context import SYSTEM, Actor, Context
from overseer.core.lifecycle import (
    ActionRefused,
    finish_attempt,
    move,
    remove_attempt_tree,
    revert_promoted,
)
from overseer.core.plumbing.bus import EventBus
from overseer.core.record.history import History
from overseer.core.watch import promote_and_watch
from overseer.vocabulary import (
    RETRIED,
    RETRYABLE,
    WAITING,
    ApprovalExpired,
    AttemptRow,
    AttemptStatus,
    ChangeApproved,
    ChangeRejected,
    DaemonPaused,
    DaemonResumed,
    FindingReopened,
    local_time,
    reason_too_long,
)


def record_approval(
    ctx: Context, improvement_id: str, actor: Actor, reason: str | None = None
) -> AttemptRow:
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
    if status == AttemptStatus.AWAITING_APPROVAL and expiry and since:
        waited = (ctx.clock.now() - parse_iso(since)).total_seconds()
        if waited >= expiry:
            # The housekeeping may not have run yet (or no daemon runs): too late is too late.
            raise ActionRefused(
                f"attempt {improvement_id[:8]} waited for a decision since {since}, longer than "
                f"approvers.expire_after ({expiry:g} s): its approval expired and it will not be "
                "promoted; the next cycle may propose it again"
            )
    if status == AttemptStatus.AWAITING_APPROVAL or not row.get("approved_by"):
        _decide(
            ctx,
            improvement_id,
            actor,
            "approved",
            reason,
            AttemptStatus.READY_TO_PROMOTE,
            f"approved by {actor.user}; promotion pending",
            approved_by=actor.user,
        )
    else:
        # Approved already and waiting (for a clean tree, a resume): this approval is kept
        # too, with its reason; the attempt stays where it is.
        history.add_approval(
            improvement_id, "approved", actor.user, actor.uid, checked_reason(reason)
        )
    ctx.bus.emit(ChangeApproved(improvement_id=improvement_id, user=actor.user, reason=reason))
    return history.get(improvement_id)


def promote_approved(ctx: Context, improvement_id: str) -> AttemptRow:
    """Promote an approved attempt (under the target's lock, held by the caller)."""
    row = ctx.history.get(improvement_id)
    if row["status"] != AttemptStatus.READY_TO_PROMOTE:
        return row  # already settled (promoted by a cycle, rejected, expired)
    promote_and_watch(ctx, improvement_id)
    finish_attempt(ctx, improvement_id)
    return ctx.history.get(improvement_id)


def approve(
    ctx: Context, improvement_id: str, actor: Actor, reason: str | None = None
) -> AttemptRow:
    with ctx.lock(wait=5.0):
        if ctx.approval_expiry:
            expire_approvals(ctx, ctx.approval_expiry)  # recorded as expired, then refused
        record_approval(ctx, improvement_id, actor, reason)
        return promote_approved(ctx, improvement_id)


def record_rejection(
    ctx: Context, improvement_id: str, actor: Actor, reason: str | None
) -> AttemptRow:
    """Record a human's rejection; the branch and worktree go with `finish_rejection`. One
    without a reason (None, or blank) is refused, saying so."""
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
    _decide(
        ctx,
        improvement_id,
        actor,
        "rejected",
        reason,
        AttemptStatus.REJECTED,
        f"rejected by {actor.user}: {reason}",
        completed_at=history.now(),
    )
    ctx.bus.emit(ChangeRejected(improvement_id=improvement_id, user=actor.user, reason=reason))
    return history.get(improvement_id)


def finish_rejection(ctx: Context, improvement_id: str) -> AttemptRow:
    remove_attempt_tree(ctx, improvement_id)
    finish_attempt(ctx, improvement_id)
    return ctx.history.get(improvement_id)


def reject(ctx: Context, improvement_id: str, actor: Actor, reason: str | None) -> AttemptRow:
    with ctx.lock(wait=5.0):
        record_rejection(ctx, improvement_id, actor, reason)
        return finish_rejection(ctx, improvement_id)


def checked_reason(reason: str | None) -> str | None:
    """A reason as the daemon's protocol accepts it, with or without a daemon: the same cap."""
    problem = reason_too_long(reason)
    if problem:
        raise ActionRefused(problem)
    return reason


def _decide(
    ctx: Context,
    improvement_id: str,
    actor: Actor,
    decision: str,
    why: str | None,
    to: AttemptStatus,
    reason: str,
    **fields: Any,
) -> None:
    """A decision on an attempt: who, when and why in `approvals`, then the attempt moves."""
    ctx.history.add_approval(improvement_id, decision, actor.user, actor.uid, checked_reason(why))
    move(ctx, improvement_id, to, reason=reason, **fields)


def expire_approvals(ctx: Context, after_seconds: float) -> list[str]:
    """Close attempts that waited for a decision longer than allowed: never promoted silently."""
    history = ctx.history
    now = ctx.clock.now()
    expired = []
    for row in history.attempts(
        target=ctx.target.name, statuses=(AttemptStatus.AWAITING_APPROVAL,)
    ):
        since = row.get("awaiting_since") or row.get("started_at")
        if not since or (now - parse_iso(since)).total_seconds() < after_seconds:
            continue
        iid = row["improvement_id"]
        _decide(
            ctx,
            iid,
            SYSTEM,
            "expired",
            f"no decision within {after_seconds:.0f} s",
            AttemptStatus.EXPIRED,
            f"approval expired: no decision since {since}",
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
    checked_reason(reason)
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
) -> AttemptRow:
    """Revert a promoted change (or one the post-promotion watch could not revert)."""
    checked_reason(reason)
    with ctx.lock(wait=5.0):
        return revert_promoted(ctx, improvement_id, actor, reason or "rolled back by hand")


def finding_label(row: AttemptRow) -> str:
    """`F401 in pkg/util.py`: the finding an attempt was made for."""
    kind = row.get("finding_kind") or "a finding"
    file = row.get("target_file") or (row.get("finding") or {}).get("file")
    return f"{kind} in {file}" if file else str(kind)


def retried_by(history: History, improvement_id: str) -> dict[str, Any] | None:
    """The decision that opened an attempt's finding again, if one did."""
    found = [a for a in history.approvals(improvement_id) if a["decision"] == RETRIED]
    return found[-1] if found else None


def retry(
    history: History, bus: EventBus, improvement_id: str, actor: Actor, reason: str | None = None
) -> dict[str, Any]:
    """Let a settled finding be proposed again: the attempts that settled it (failed,
    rejected, denied, rolled back, expired, regressed, or dry-run for dry runs) no longer
    keep later cycles from choosing it on the same code. Recorded on each of them with who,
    when and why; the attempts themselves keep their status (what happened stays true)."""
    checked_reason(reason)
    row = history.get(improvement_id)
    status, short = row["status"], improvement_id[:8]
    if status not in RETRYABLE:
        if status in WAITING:
            why = "it awaits a decision: approve or reject it"
        elif status == AttemptStatus.PROMOTED:
            why = "it was promoted: its finding is fixed on the branch"
        else:  # running, promoting, interrupted, error
            why = "it is not held against its finding; a later cycle tries it again anyway"
        raise ActionRefused(f"attempt {short} is {status}: nothing to retry ({why})")
    earlier = retried_by(history, improvement_id)
    if earlier is not None:
        raise ActionRefused(
            f"attempt {short} was retried already, by {earlier['user']} at "
            f"{local_time(earlier['at'])}: "
            "its finding may be proposed again"
        )
    fingerprint = row.get("fingerprint")
    if not fingerprint:
        raise ActionRefused(
            f"attempt {short} records no fingerprint: nothing keeps it from a cycle"
        )
    reopened = [
        iid
        for iid, settled in history.fingerprint_attempts(fingerprint, row["target"])
        if settled in RETRYABLE or iid == improvement_id
    ]
    for iid in reopened:
        history.add_approval(iid, RETRIED, actor.user, actor.uid, reason)
    label = finding_label(row)
    bus.emit(
        FindingReopened(
            improvement_id=improvement_id,
            user=actor.user,
            reason=reason,
            finding=label,
            attempts=reopened,
        )
    )
    return {"improvement_id": improvement_id, "finding": label, "reopened": reopened}
