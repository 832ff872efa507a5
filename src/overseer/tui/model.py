"""What the dashboard shows about the current cycle, kept from the events (no Textual here)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PHASES = ("ANALYZE", "GENERATE", "SAFETY", "DEPLOY", "EVALUATE", "LEARN", "RECORD")


@dataclass
class PhaseView:
    name: str
    state: str = "pending"  # pending | running | ok | failed | skipped
    started: float | None = None  # monotonic, for the elapsed time of a running phase
    duration: float | None = None
    summary: str = ""
    done: int | None = None
    total: int | None = None
    message: str = ""

    def elapsed(self, now: float | None = None) -> float | None:
        if self.state == "running" and self.started is not None:
            return (now if now is not None else time.monotonic()) - self.started
        return self.duration


@dataclass
class CycleView:
    cycle_id: str | None = None
    target: str = ""
    branch: str = ""
    started_at: str | None = None
    attempt: str | None = None
    status: str | None = None  # None while running, then ok | failed | interrupted
    summary: str = ""
    phases: dict[str, PhaseView] = field(default_factory=lambda: {p: PhaseView(p) for p in PHASES})

    @classmethod
    def started(cls, event: dict[str, Any]) -> CycleView:
        return cls(
            cycle_id=event["cycle_id"],
            target=event.get("target", ""),
            branch=event.get("branch", ""),
            started_at=event.get("at"),
        )

    def apply(self, event: dict[str, Any], now: float | None = None) -> bool:
        """Update from one event of this cycle; True when something visible changed."""
        kind = event.get("kind")
        now = now if now is not None else time.monotonic()
        if event.get("cycle_id") != self.cycle_id or self.cycle_id is None:
            return False
        if kind == "PhaseStarted":
            iid = event.get("improvement_id")
            if iid and iid != self.attempt:
                # A new attempt in the same cycle: its phases start afresh, ANALYZE stays.
                self.attempt = iid
                for name in PHASES[1:]:
                    self.phases[name] = PhaseView(name)
            phase = self.phases[event["phase"]]
            phase.state, phase.started, phase.duration = "running", now, None
            phase.done = phase.total = None
            phase.summary = phase.message = ""
            return True
        if kind == "PhaseProgress":
            phase = self.phases[event["phase"]]
            phase.done, phase.total = event.get("done"), event.get("total")
            phase.message = event.get("message", "")
            return True
        if kind == "PhaseFinished":
            phase = self.phases[event["phase"]]
            phase.state = event.get("outcome", "ok")
            phase.duration = event.get("duration")
            phase.summary = event.get("summary", "")
            return True
        if kind == "CycleFinished":
            self.status = event.get("status")
            self.summary = event.get("summary", "")
            for phase in self.phases.values():
                if phase.state == "running":
                    phase.state = "failed"
            return True
        return False

    @property
    def running(self) -> bool:
        return self.cycle_id is not None and self.status is None


def clock_time(stamp: str | None) -> str:
    if not stamp:
        return "-"
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return stamp
