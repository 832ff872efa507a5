"""What a running daemon knows that the history does not, in one small object the connection
code and the request handlers receive instead of the daemon itself (uvicorn's ServerState)."""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from overseer import __version__
from overseer.core.plumbing.stop import StopToken
from overseer.daemon.connections import Connection
from overseer.daemon.lanes import Lanes
from overseer.daemon.scheduler import CycleScheduler
from overseer.notifications import Notifications
from overseer.vocabulary import TargetStatus


@dataclass
class LiveState:
    started_at: datetime
    socket_path: Path
    lanes: Lanes
    stop: StopToken
    #: the top-level schedule, described ("every 30m"), and the scheduler once it runs
    schedule: str
    scheduler: CycleScheduler | None = None
    #: the cycles running now, by target: id, target, branch, phase, attempt, since, progress
    running: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: targets whose cycle is due: asked for (by the schedule or a run-now) and not finished
    #: (waiting for a slot or its lane, or running)
    cycling: set[str] = field(default_factory=set)
    #: the branch each target resolved to (a target may leave it to the checkout)
    branches: dict[str, str] = field(default_factory=dict)
    #: events emitted so far: the status cache's key (any change to the history is an event)
    event_serial: int = 0
    #: the clients connected now
    connections: set[Connection] = field(default_factory=set)
    #: work started for clients (a run-now) that shutdown must not leave behind
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    #: the notification receivers (config `notify`), when there are any
    notifications: Notifications | None = None
    # Events come from every target's lane at once; what they change is changed under it.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def track(self, e: dict[str, Any]) -> None:
        """Follow the running cycles from the events (called for every event, in order per
        lane, from any thread)."""
        kind = e["kind"]
        with self._lock:
            self.event_serial += 1
            if kind == "CycleStarted":
                self.branches[e["target"]] = e["branch"]
                self.running[e["target"]] = {
                    "cycle_id": e["cycle_id"],
                    "target": e["target"],
                    "branch": e["branch"],
                    "phase": None,
                    "improvement_id": None,
                    "since": e["at"],
                    "progress": None,
                }
                return
            if kind == "CycleFinished":
                self.running.pop(e["target"], None)
                return
            current = self._cycle(e.get("cycle_id"))
            if current is None:
                return
            if kind == "PhaseStarted":
                current.update(
                    phase=e["phase"],
                    improvement_id=e["improvement_id"],
                    phase_since=e["at"],
                    progress=None,
                )
            elif kind == "PhaseProgress" and e.get("total"):
                current["progress"] = {"done": e["done"], "total": e["total"]}

    def _cycle(self, cycle_id: str | None) -> dict[str, Any] | None:
        if cycle_id is None:
            return None
        for current in self.running.values():
            if current["cycle_id"] == cycle_id:
                return current
        return None

    def ended(self, target: str) -> None:
        """A target's cycle is over, whether or not it could say so (CycleFinished)."""
        with self._lock:
            self.running.pop(target, None)

    def running_now(self) -> dict[str, dict[str, Any]]:
        """The running cycles by target, copied (events change them from other threads)."""
        with self._lock:
            return {name: dict(c) for name, c in self.running.items()}

    @property
    def current(self) -> dict[str, Any] | None:
        """The cycle running longest (clients that know one cycle at a time show this one)."""
        with self._lock:
            oldest = min(self.running.values(), key=lambda c: c["since"], default=None)
            return dict(oldest) if oldest is not None else None

    def live_target(self, name: str) -> TargetStatus:
        """A target's part of the status only the daemon knows: running, waiting (due, not
        started) or idle; its running cycle; its schedule and next cycle."""
        with self._lock:
            current = self.running.get(name)
            current = dict(current) if current is not None else None
        if current is not None:
            state = "running"
        elif name in self.cycling:
            state = "waiting"
        else:
            state = "idle"
        scheduler = self.scheduler
        next_run = scheduler.next_run(name) if scheduler else None
        return {
            "state": state,
            "current": current,
            "schedule": (scheduler.describe(name) if scheduler else None) or self.schedule,
            "next_run": next_run.isoformat() if next_run else None,
        }

    def live_status(self) -> dict[str, Any]:
        """The daemon's part of a status (application.Application.status adds the rest)."""
        next_run = self.scheduler.next_run() if self.scheduler else None
        current = self.current
        if self.stop.stopping:
            state = "stopping"
        elif current is not None:
            state = "running"
        else:
            state = "idle"
        return {
            "state": state,
            "schedule": self.schedule,
            "next_run": next_run.isoformat() if next_run else None,
            "current": current,
            "queue": self.lanes.total,
            "clients": len(self.connections),
            "subscribers": sum(1 for c in self.connections if c.outbox.subscribed),
            "pid": os.getpid(),
            "version": __version__,
            "started_at": self.started_at.isoformat(),
            "socket": str(self.socket_path),
            "notifications": self.notifications.status() if self.notifications else [],
        }
