"""The event bus every phase reports through; the CLI, the history and the daemon subscribe.

The events themselves are in overseer/vocabulary.py, named in the past tense (something
happened); commands elsewhere are imperative.
Publishing is synchronous and never fails the publisher: a subscriber that raises is logged
and skipped, because a broken printer or socket must not break a cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from overseer.base.clock import Clock
from overseer.core.plumbing import spent
from overseer.vocabulary import Event, Phase, PhaseFinished, PhaseProgress, PhaseStarted

log = logging.getLogger(__name__)


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

    def emit(self, event: Event) -> Event:
        """Stamp the event with the time, redact its fields, and hand it to every subscriber."""
        fields = event.fields()
        if self.redact is not None:
            fields = {k: self.redact(v) for k, v in fields.items()}
        event = event.replace(**{**fields, "at": self.clock.now()})
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
        self.emit(PhaseStarted(cycle_id=cycle_id, improvement_id=improvement_id, phase=phase))
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
                PhaseFinished(
                    cycle_id=cycle_id,
                    improvement_id=improvement_id,
                    phase=phase,
                    duration=round(report.duration, 3),
                    outcome=report.outcome,
                    summary=report.summary,
                    external_ms=spent.since(external_before),
                )
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
            PhaseProgress(
                cycle_id=self.cycle_id,
                improvement_id=self.improvement_id,
                phase=self.phase,
                message=message,
                done=done,
                total=total,
            )
        )

    def skip(self, summary: str) -> None:
        self.outcome = "skipped"
        self.summary = summary

    def fail(self, summary: str) -> None:
        self.outcome = "failed"
        self.summary = summary


class SideRunReport(PhaseReport):
    """The progress of a run beside the phase's own (the baseline's tests, during EVALUATE, next
    to the candidate's): said with a label and its counts in the words, so that the two runs'
    lines can be told apart and the phase's done/total stay its own run's."""

    def __init__(self, phase: PhaseReport, label: str) -> None:
        super().__init__(phase.bus, phase.phase, phase.cycle_id, phase.improvement_id)
        self.label = label

    def progress(self, message: str, done: int | None = None, total: int | None = None) -> None:
        counts = f" {done}/{total}" if done is not None and total else ""
        super().progress(f"{self.label}: {message}{counts}")
