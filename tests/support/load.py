"""The load the daemon is tested and measured under (tests/daemon/test_load.py,
bench/load_bench.py).

A real daemon process on a small repository with many findings, so every cycle is the same
work: a dry run evaluates one ruff fix (and a dry run never repeats a change it already
evaluated, so each cycle takes the next module). Around it: subscribed clients that record
every event and when it arrived, a steady stream of `status` requests, and a subscriber that
stops reading altogether.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from overseer.client import Client, run_now_when_free
from support.helpers import LIMITED, SAMPLE, daemon_config, init_repo

SUBSCRIBERS = 50
STATUS_RATE = 20.0  # status requests per second, sent whether or not answers have come
HELLO = b'{"id": 0, "op": "hello", "args": {"protocol": 1}}\n'


def findings_repo(path: Path, modules: int) -> Path:
    """The sample project plus `modules` modules with an unused import each (ruff F401)."""
    files = dict(SAMPLE)
    for n in range(modules):
        files[f"pkg/mod{n:02d}.py"] = f"import os\n\n\ndef value{n}():\n    return {n}\n"
    return init_repo(path, files)


def load_config(tmp_path: Path, repo: Path, socket_path: Path, **daemon: Any) -> Path:
    """Dry runs that need no approval: cycles run to the end and change nothing."""
    path, _ = daemon_config(
        tmp_path,
        repo,
        socket_path,
        policy=LIMITED,
        defaults={"dry_run": True, "require_approval": False},
        daemon=daemon,
    )
    return path


def received_at() -> float:
    return time.time()


def sent_at(event: dict[str, Any]) -> float:
    """When the daemon emitted it (events carry a wall-clock time, to the millisecond)."""
    return datetime.fromisoformat(event["at"]).timestamp()


class Subscriber:
    """A client that subscribes and records every event with the time it arrived."""

    def __init__(self, path: Path) -> None:
        self.client = Client(path, name="load-subscriber")
        self.events: list[dict[str, Any]] = []
        self.arrived: list[float] = []
        self.task: asyncio.Task[None] | None = None
        self.seen = asyncio.Event()  # set on each event

    async def start(self) -> None:
        await self.client.connect()
        await self.client.request("subscribe")
        self.task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self.client.events():
            self.arrived.append(received_at())
            self.events.append(event)
            self.seen.set()

    async def wait_for(self, kind: str, count: int = 1, timeout: float = 60) -> None:
        async def until() -> None:
            while sum(1 for e in self.events if e["kind"] == kind) < count:
                self.seen.clear()
                await self.seen.wait()

        await asyncio.wait_for(until(), timeout)

    def latencies_ms(self) -> list[float]:
        return [(r - sent_at(e)) * 1000 for e, r in zip(self.events, self.arrived, strict=True)]

    async def close(self) -> None:
        await self.client.close()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


class StatusStream:
    """`status` at a steady rate on one connection, each request sent on time whether or not
    the earlier ones were answered; records every answer and how long it took."""

    def __init__(self, path: Path, rate: float = STATUS_RATE) -> None:
        self.client = Client(path, name="load-status")
        self.rate = rate
        self.sent = 0
        self.answers: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self.seconds: list[float] = []
        self.pending: set[asyncio.Task[None]] = set()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.client.connect()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            self.sent += 1
            request = asyncio.create_task(self._one())
            self.pending.add(request)
            request.add_done_callback(self.pending.discard)
            await asyncio.sleep(max(0.0, start + self.sent / self.rate - loop.time()))

    async def _one(self) -> None:
        started = time.monotonic()
        try:
            self.answers.append(await self.client.request("status", timeout=60))
            self.seconds.append(time.monotonic() - started)
        except Exception as exc:  # recorded, and the test says which
            self.failures.append(f"{type(exc).__name__}: {exc}")

    async def stop(self) -> None:
        """Stop sending, and wait for the answers to what was sent."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.pending:
            await asyncio.wait(self.pending, timeout=90)
        await self.client.close()


class Stalled:
    """A subscriber that sends requests and never reads: its answers fill the socket, so
    the events meant for it pile up in the daemon until the daemon drops them."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.sock.sendall(HELLO + b'{"id": "subscribe", "op": "subscribe"}\n')
        self.pings = 0
        self.owed = b""  # the rest of a line the socket took only part of
        self.buffer = b""

    def fill(self, cap: int = 64 * 1024 * 1024, stuck: float = 1.0) -> int:
        """Send pings until the daemon stops reading them (nothing goes for `stuck` seconds:
        it holds answers the client has not read, and waits for it to read them). Returns
        the bytes sent; reaching `cap` means the daemon never stopped reading."""
        line = b'{"id": 1, "op": "ping"}\n'
        chunk = line * 2048
        sent = 0
        self.sock.settimeout(stuck)
        try:
            while sent < cap:
                try:
                    n = self.sock.send(self.owed or chunk)
                except TimeoutError:
                    break
                if self.owed:
                    self.owed = self.owed[n:]
                elif n % len(line):  # it stopped mid-line: the rest is owed before anything else
                    self.owed = line[n % len(line) :]
                sent += n
        finally:
            self.sock.settimeout(None)
        self.pings += (sent + len(self.owed)) // len(line)
        return sent

    async def read_until(self, done: Any, timeout: float = 60) -> list[dict[str, Any]]:
        """Read (at last) until `done(message)` is true for a message; returns all read."""
        loop = asyncio.get_running_loop()
        self.sock.setblocking(False)
        messages: list[dict[str, Any]] = []

        async def read() -> None:
            while True:
                data = await loop.sock_recv(self.sock, 1 << 20)
                if not data:
                    raise AssertionError("the daemon closed the stalled subscriber's connection")
                self.buffer += data
                *lines, self.buffer = self.buffer.split(b"\n")
                for line in lines:
                    messages.append(json.loads(line))
                    if done(messages[-1]):
                        return

        await asyncio.wait_for(read(), timeout)
        return messages

    def send(self, line: bytes) -> None:
        self.sock.setblocking(True)
        self.sock.sendall(self.owed + line)
        self.owed = b""

    def close(self) -> None:
        self.sock.close()


async def run_now(client: Client, timeout: float = 60) -> None:
    """Start a cycle, waiting for the previous one to let go (it finishes its clean-up after
    CycleFinished)."""
    await run_now_when_free(client, patience=timeout, poll=0.02)


async def wait_idle(client: Client, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = await client.request("status")
        if status["state"] == "idle" and status["queue"] == 0:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"the daemon did not become idle: {status}")
        await asyncio.sleep(0.05)


def cycle_seconds(events: list[dict[str, Any]]) -> dict[str, float]:
    """Each cycle's duration, from its CycleStarted and CycleFinished times."""
    started = {e["cycle_id"]: sent_at(e) for e in events if e["kind"] == "CycleStarted"}
    return {
        e["cycle_id"]: sent_at(e) - started[e["cycle_id"]]
        for e in events
        if e["kind"] == "CycleFinished" and e["cycle_id"] in started
    }


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def fill_history(state: Path, count: int) -> None:
    """`count` finished attempts in the history at `state`, as a long-lived daemon has them
    (the TUI's history screen and big `history` answers are measured on them)."""
    import sqlite_utils

    from overseer.base.clock import SystemClock
    from overseer.core.record.history import History

    History(state / "history.sqlite3", SystemClock()).close()  # the schema
    db = sqlite_utils.Database(state / "history.sqlite3")
    statuses = ["promoted", "failed", "rejected", "dry_run", "rolled_back", "denied"]
    db["improvements"].insert_all(
        (
            {
                "improvement_id": f"{n:012x}",
                "cycle_id": f"{n:012x}",
                "target": "proj",
                "status": statuses[n % len(statuses)],
                "change_type": "quality",
                "risk_level": "low",
                "target_file": f"pkg/module_{n % 500}.py",
                "finding_kind": "F401",
                "success_score": (n % 100) / 100,
                "tests_passed": 300,
                "tests_failed": n % 3,
                "was_deployed": int(n % 6 == 0),
                "was_rolled_back": int(n % 6 == 4),
                "started_at": f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:00:00.000+00:00",
                # Closed, as finished attempts are (recovery would learn from unclosed ones).
                "completed_at": f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:01:00.000+00:00",
            }
            for n in range(count)
        ),
        batch_size=5000,
    )
    db.conn.close()
