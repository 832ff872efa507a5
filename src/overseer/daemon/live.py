"""What a running daemon knows that the history does not, in one small object the connection
code and the request handlers receive instead of the daemon itself (uvicorn's ServerState)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from overseer import __version__
from overseer.core.plumbing.stop import StopToken
from overseer.daemon.connections import Connection
from overseer.daemon.scheduler import CycleScheduler
from overseer.daemon.worker import Worker
from overseer.notifications import Notifications


@dataclass
class LiveState:
    started_at: datetime
    socket_path: Path
    worker: Worker
    stop: StopToken
    #: the schedule, described ("every 30m"), and the scheduler once it runs
    schedule: str
    scheduler: CycleScheduler | None = None
    #: held while the daemon runs cycles (one round over the targets at a time)
    cycle_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: the cycle running now: id, target, branch, phase, attempt, since, progress
    current: dict[str, Any] | None = None
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

    def track(self, e: dict[str, Any]) -> None:
        """Follow the running cycle from the events (called for every event, in order)."""
        self.event_serial += 1
        kind = e["kind"]
        if kind == "CycleStarted":
            self.branches[e["target"]] = e["branch"]
            self.current = {
                "cycle_id": e["cycle_id"],
                "target": e["target"],
                "branch": e["branch"],
                "phase": None,
                "improvement_id": None,
                "since": e["at"],
                "progress": None,
            }
        elif kind == "PhaseStarted" and self.current is not None:
            self.current.update(
                phase=e["phase"],
                improvement_id=e["improvement_id"],
                phase_since=e["at"],
                progress=None,
            )
        elif kind == "PhaseProgress" and self.current is not None and e.get("total"):
            self.current["progress"] = {"done": e["done"], "total": e["total"]}
        elif kind == "CycleFinished":
            self.current = None

    def live_status(self) -> dict[str, Any]:
        """The daemon's part of a status (application.Application.status adds the rest)."""
        next_run = self.scheduler.next_run() if self.scheduler else None
        if self.stop.stopping:
            state = "stopping"
        elif self.current is not None:
            state = "running"
        else:
            state = "idle"
        return {
            "state": state,
            "schedule": self.schedule,
            "next_run": next_run.isoformat() if next_run else None,
            "current": dict(self.current) if self.current else None,
            "queue": self.worker.queued,
            "clients": len(self.connections),
            "subscribers": sum(1 for c in self.connections if c.outbox.subscribed),
            "pid": os.getpid(),
            "version": __version__,
            "started_at": self.started_at.isoformat(),
            "socket": str(self.socket_path),
            "notifications": self.notifications.status() if self.notifications else [],
        }
