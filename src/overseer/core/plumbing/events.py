"""The event bus every phase reports through; the CLI, the history and the daemon subscribe.

Events are named in the past tense (something happened); commands elsewhere are imperative.
Publishing is synchronous and never fails the publisher: a subscriber that raises is logged
and skipped, because a broken printer or socket must not break a cycle.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from overseer.base.clock import Clock, iso
from overseer.core.plumbing import spent

log = logging.getLogger(__name__)


class Phase(StrEnum):
    ANALYZE = "ANALYZE"
    GENERATE = "GENERATE"
    SAFETY = "SAFETY"
    DEPLOY = "DEPLOY"
    EVALUATE = "EVALUATE"
    LEARN = "LEARN"
    RECORD = "RECORD"


PHASES: tuple[Phase, ...] = tuple(Phase)


@dataclass(frozen=True, kw_only=True)
class Event:
    kind: ClassVar[str] = "Event"
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "at": iso(self.at)}
        for f in dataclasses.fields(self):
            if f.name != "at":
                data[f.name] = getattr(self, f.name)
        return data


def _event(cls: type[Event]) -> type[Event]:
    cls.kind = cls.__name__
    EVENT_TYPES[cls.kind] = cls
    return cls


EVENT_TYPES: dict[str, type[Event]] = {}


@_event
@dataclass(frozen=True, kw_only=True)
class CycleStarted(Event):
    cycle_id: str
    target: str
    branch: str
    dry_run: bool
    parameters: dict[str, Any] = field(default_factory=dict)


@_event
@dataclass(frozen=True, kw_only=True)
class PhaseStarted(Event):
    cycle_id: str
    improvement_id: str | None
    phase: str


@_event
@dataclass(frozen=True, kw_only=True)
class PhaseProgress(Event):
    cycle_id: str
    improvement_id: str | None
    phase: str
    message: str
    done: int | None = None
    total: int | None = None


@_event
@dataclass(frozen=True, kw_only=True)
class PhaseFinished(Event):
    cycle_id: str
    improvement_id: str | None
    phase: str
    duration: float
    outcome: str  # ok | failed | skipped
    summary: str
    # Milliseconds of the phase spent waiting for external programs, by kind (tests, ruff,
    # git, …): the rest of `duration` is overseer's own work.
    external_ms: dict[str, float] = field(default_factory=dict)


@_event
@dataclass(frozen=True, kw_only=True)
class ApprovalRequested(Event):
    improvement_id: str
    target: str
    target_file: str | None
    change_type: str | None
    risk_level: str | None
    reasons: list[str] = field(default_factory=list)


@_event
@dataclass(frozen=True, kw_only=True)
class ChangeApproved(Event):
    improvement_id: str
    user: str
    reason: str | None


@_event
@dataclass(frozen=True, kw_only=True)
class ChangeRejected(Event):
    improvement_id: str
    user: str
    reason: str


@_event
@dataclass(frozen=True, kw_only=True)
class ChangePromoted(Event):
    improvement_id: str
    target: str
    branch: str
    commit: str
    pushed: bool | None = None


@_event
@dataclass(frozen=True, kw_only=True)
class PromotionDeferred(Event):
    improvement_id: str
    reason: str


@_event
@dataclass(frozen=True, kw_only=True)
class ChangeRolledBack(Event):
    improvement_id: str
    revert_commit: str
    user: str
    reason: str


@_event
@dataclass(frozen=True, kw_only=True)
class AttemptFinished(Event):
    improvement_id: str
    status: str
    reason: str | None = None


@_event
@dataclass(frozen=True, kw_only=True)
class CycleFinished(Event):
    cycle_id: str
    target: str
    status: str
    summary: str
    attempts: list[str] = field(default_factory=list)


@_event
@dataclass(frozen=True, kw_only=True)
class CIPolled(Event):
    """One poll of the external CI's status command: recorded as it happens, so a crash while
    waiting for CI loses none of them."""

    improvement_id: str
    commit: str
    poll: int
    status: str  # pass | fail | pending | unknown
    output: str = ""


@_event
@dataclass(frozen=True, kw_only=True)
class RegressionFound(Event):
    """The post-promotion watch found a regression, and reverted it or needs a human."""

    improvement_id: str
    reason: str
    action: str  # reverted | needs a human
    detail: str = ""


@_event
@dataclass(frozen=True, kw_only=True)
class ApprovalExpired(Event):
    improvement_id: str
    waited: str  # since when it waited


@_event
@dataclass(frozen=True, kw_only=True)
class DaemonPaused(Event):
    user: str
    reason: str | None


@_event
@dataclass(frozen=True, kw_only=True)
class CircuitBreakerTripped(Event):
    target: str
    attempts: list[str]
    reason: str


@_event
@dataclass(frozen=True, kw_only=True)
class AutonomyChanged(Event):
    before: str | None
    after: str
    policy: str
    policy_version: str


@_event
@dataclass(frozen=True, kw_only=True)
class DaemonResumed(Event):
    user: str


@_event
@dataclass(frozen=True, kw_only=True)
class CycleSkipped(Event):
    target: str | None
    reason: str


@_event
@dataclass(frozen=True, kw_only=True)
class ConfigReloaded(Event):
    files: list[str]
    policy_version: str
    changes: list[str] = field(default_factory=list)
    # Recent and waiting attempts the new policy would have judged differently.
    reverdicts: list[dict[str, Any]] = field(default_factory=list)


@_event
@dataclass(frozen=True, kw_only=True)
class ReloadFailed(Event):
    files: list[str]
    problems: list[str]


@_event
@dataclass(frozen=True, kw_only=True)
class ErrorRaised(Event):
    where: str
    message: str


@_event
@dataclass(frozen=True, kw_only=True)
class DaemonStarted(Event):
    pid: int
    socket: str
    targets: list[str]


@_event
@dataclass(frozen=True, kw_only=True)
class DaemonStopping(Event):
    reason: str


@_event
@dataclass(frozen=True, kw_only=True)
class AttemptsRecovered(Event):
    """Start-up found attempts a killed process left behind and closed them."""

    target: str
    closed: list[str]
    promoted: list[str]
    worktrees_removed: int


Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self, clock: Clock, redact: Callable[[Any], Any] | None = None) -> None:
        self.clock = clock
        self.redact = redact  # applied to every field, so no subscriber ever sees a secret
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def emit(self, event_type: type[Event], **fields: Any) -> Event:
        if self.redact is not None:
            fields = {k: self.redact(v) for k, v in fields.items()}
        event = event_type(at=self.clock.now(), **fields)
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:  # a subscriber must never break the cycle
                log.exception("event subscriber %r failed on %s", subscriber, event.kind)
        return event

    @contextmanager
    def phase(
        self, phase: Phase, cycle_id: str, improvement_id: str | None = None
    ) -> Iterator[PhaseReport]:
        """Time one phase and report it started and finished, whatever happens inside."""
        report = PhaseReport(self, phase, cycle_id, improvement_id)
        self.emit(PhaseStarted, cycle_id=cycle_id, improvement_id=improvement_id, phase=phase)
        started = self.clock.monotonic()
        external_before = spent.totals()
        try:
            yield report
        except BaseException as exc:
            report.outcome = "failed"
            report.summary = report.summary or f"{type(exc).__name__}: {exc}"
            raise
        finally:
            report.duration = self.clock.monotonic() - started
            self.emit(
                PhaseFinished,
                cycle_id=cycle_id,
                improvement_id=improvement_id,
                phase=phase,
                duration=round(report.duration, 3),
                outcome=report.outcome,
                summary=report.summary,
                external_ms=spent.since(external_before),
            )


class PhaseReport:
    """What a phase says about itself when it finishes; progress goes out as it happens."""

    def __init__(
        self, bus: EventBus, phase: Phase, cycle_id: str, improvement_id: str | None
    ) -> None:
        self.bus = bus
        self.phase = phase
        self.cycle_id = cycle_id
        self.improvement_id = improvement_id
        self.outcome = "ok"
        self.summary = ""
        self.duration = 0.0

    def progress(self, message: str, done: int | None = None, total: int | None = None) -> None:
        self.bus.emit(
            PhaseProgress,
            cycle_id=self.cycle_id,
            improvement_id=self.improvement_id,
            phase=self.phase,
            message=message,
            done=done,
            total=total,
        )

    def skip(self, summary: str) -> None:
        self.outcome = "skipped"
        self.summary = summary

    def fail(self, summary: str) -> None:
        self.outcome = "failed"
        self.summary = summary
