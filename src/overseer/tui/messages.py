"""Messages the event worker posts to the app: past tense, one per thing that happened.

Progress messages for the same phase replace each other while they wait in the queue, so a
busy test run cannot flood the UI: only the newest count is drawn.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message


class Connected(Message):
    def __init__(self, hello: dict[str, Any], status: dict[str, Any]) -> None:
        super().__init__()
        self.hello = hello
        self.status = status


class Disconnected(Message):
    def __init__(self, reason: str, retry_in: float) -> None:
        super().__init__()
        self.reason = reason
        self.retry_in = retry_in


class DaemonEvent(Message):
    """Any event from the daemon, as the dict that crossed the socket."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event


class EventLogged(DaemonEvent):
    """For the event log: every event but progress."""


class CycleStarted(DaemonEvent):
    pass


class PhaseStarted(DaemonEvent):
    pass


class PhaseProgressed(DaemonEvent):
    def can_replace(self, message: Message) -> bool:
        if not isinstance(message, PhaseProgressed):
            return False
        mine, theirs = self.event, message.event
        return (mine.get("cycle_id"), mine.get("improvement_id"), mine.get("phase")) == (
            theirs.get("cycle_id"),
            theirs.get("improvement_id"),
            theirs.get("phase"),
        )


class PhaseFinished(DaemonEvent):
    pass


class CycleFinished(DaemonEvent):
    pass


class ApprovalRequested(DaemonEvent):
    pass


class ChangesChanged(DaemonEvent):
    """Something happened to a change (approved, rejected, promoted, rolled back, expired)."""


class DaemonChanged(DaemonEvent):
    """The daemon's own state changed (paused, resumed, reloaded, stopping)."""


class Alarm(DaemonEvent):
    """Something a person must act on: a target that cannot be evaluated or used, the circuit
    breaker, an error the daemon raised."""


ALARMS = {"TargetNotEvaluable", "TargetUnhealthy", "ErrorRaised", "CircuitBreakerTripped"}
CHANGES = {
    "ChangeApproved",
    "ChangeRejected",
    "ChangePromoted",
    "ChangeRolledBack",
    "ApprovalExpired",
    "PromotionDeferred",
    "AttemptFinished",
    "AttemptsRecovered",
}
DAEMON = {
    "DaemonPaused",
    "DaemonResumed",
    "ConfigReloaded",
    "ReloadFailed",
    "DaemonStopping",
    "CycleSkipped",
}
SPECIFIC: dict[str, type[DaemonEvent]] = {
    "CycleStarted": CycleStarted,
    "PhaseStarted": PhaseStarted,
    "PhaseFinished": PhaseFinished,
    "CycleFinished": CycleFinished,
    "ApprovalRequested": ApprovalRequested,
}


def messages_for(event: dict[str, Any]) -> list[DaemonEvent]:
    kind = event.get("kind", "")
    if kind == "PhaseProgress":
        return [PhaseProgressed(event)]
    out: list[DaemonEvent] = [EventLogged(event)]
    if kind in SPECIFIC:
        out.append(SPECIFIC[kind](event))
    if kind in CHANGES:
        out.append(ChangesChanged(event))
    if kind in DAEMON:
        out.append(DaemonChanged(event))
    if kind in ALARMS:
        out.append(Alarm(event))
    return out
