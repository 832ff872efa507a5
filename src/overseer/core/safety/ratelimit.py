"""Rate limits and the circuit breaker, counted from the history so they survive restarts.

Limits (per target, real changes only — dry runs spend nothing): changes per hour and per day,
changes waiting for a decision at once, and a cooldown after a rollback. The circuit breaker:
after N consecutive failed or rolled-back real attempts, autonomy pauses (the same kill switch
as `overseer pause`) until a human resumes it; the pause says why.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from overseer.base.clock import Clock, iso, parse_iso
from overseer.core.plumbing.bus import EventBus
from overseer.core.record.history import History
from overseer.core.safety.policy import CompiledPolicy
from overseer.vocabulary import AttemptStatus, Budget, CircuitBreakerTripped

BREAKER = "overseer (circuit breaker)"
# What the breaker counts: failures break the run of successes, promotions end it; the rest
# (denied by policy, rejected, expired, interrupted) says nothing about whether changes work.
COUNTED = (
    AttemptStatus.FAILED,
    AttemptStatus.ROLLED_BACK,
    AttemptStatus.REGRESSED,
    AttemptStatus.PROMOTED,
)


class RateLimiter:
    def __init__(self, history: History, policy: CompiledPolicy, clock: Clock) -> None:
        self.history = history
        self.limits = policy.policy.limits
        self.clock = clock

    def why_not(self, target: str, *, dry_run: bool) -> str | None:
        """Why no further real change may start on `target` now, or None."""
        if dry_run:
            return None
        limits, now = self.limits, self.clock.now()
        hour = self.history.count_changes_since(target, now - timedelta(hours=1))
        if hour >= limits.per_hour:
            return f"{hour} changes in the last hour (limits.per_hour={limits.per_hour})"
        day = self.history.count_changes_since(target, now - timedelta(days=1))
        if day >= limits.per_day:
            return f"{day} changes in the last day (limits.per_day={limits.per_day})"
        waiting = self.history.count_attempts(
            target=target,
            statuses=(AttemptStatus.AWAITING_APPROVAL, AttemptStatus.READY_TO_PROMOTE),
        )
        if waiting >= limits.pending_approvals:
            return (
                f"{waiting} changes wait for a decision "
                f"(limits.pending_approvals={limits.pending_approvals})"
            )
        cooldown = self.cooldown_until(target)
        if cooldown is not None and now < cooldown:
            return (
                f"cooling down after a rollback until {iso(cooldown)} "
                f"(limits.cooldown_after_rollback={limits.cooldown_after_rollback:.0f} s)"
            )
        return None

    def cooldown_until(self, target: str) -> datetime | None:
        last = self.history.last_rollback(target)
        if last is None or not self.limits.cooldown_after_rollback:
            return None
        return parse_iso(last) + timedelta(seconds=self.limits.cooldown_after_rollback)

    def budget(self, target: str) -> Budget:
        now, limits = self.clock.now(), self.limits
        cooldown = self.cooldown_until(target)
        return {
            "hour": {
                "used": self.history.count_changes_since(target, now - timedelta(hours=1)),
                "limit": limits.per_hour,
            },
            "day": {
                "used": self.history.count_changes_since(target, now - timedelta(days=1)),
                "limit": limits.per_day,
            },
            "cooldown_until": iso(cooldown) if cooldown is not None and now < cooldown else None,
        }


def consecutive_failures(history: History, target: str) -> list[str]:
    """The latest real attempts that failed or were rolled back, newest first, up to the last
    promotion or the last time a human resumed autonomy."""
    resumed = (history.get_control("resumed") or {}).get("at")
    failures = []
    for row in history.attempts(target=target, statuses=COUNTED, limit=200):
        if row.get("dry_run"):
            continue
        if resumed and row["started_at"] <= resumed:
            break
        if row["status"] == AttemptStatus.PROMOTED:
            break
        failures.append(row["improvement_id"])
    return failures


def trip_breaker_if_needed(
    history: History, bus: EventBus, policy: CompiledPolicy, target: str
) -> str | None:
    """Pause autonomy when a target has failed too often in a row; says why, or None."""
    threshold = policy.policy.limits.circuit_breaker
    if not threshold or history.get_control("paused"):
        return None
    failures = consecutive_failures(history, target)
    if len(failures) < threshold:
        return None
    reason = (
        f"circuit breaker: {len(failures)} consecutive failed or rolled-back attempts on "
        f"{target} ({', '.join(f[:8] for f in failures[:threshold])}); a human must resume"
    )
    history.set_control(
        "paused",
        {"user": BREAKER, "uid": -1, "reason": reason, "at": history.now(), "breaker": True},
    )
    bus.emit(CircuitBreakerTripped(target=target, attempts=failures[:threshold], reason=reason))
    return reason
