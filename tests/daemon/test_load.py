"""The daemon under load, as a real process: 50 subscribers, a steady stream of `status`
requests and one subscriber that stopped reading, while cycles run.

What must hold, whatever the timing: every healthy subscriber gets every event, in order; the
one that stopped reading holds up nobody and, once it reads again, is told exactly how many
events it missed; every status request is answered; the daemon's memory stays bounded. How
much the load slows a cycle is measured, not asserted: bench/load_bench.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from support.daemons import DaemonProcess
from support.load import (
    SUBSCRIBERS,
    Stalled,
    StatusStream,
    Subscriber,
    findings_repo,
    load_config,
    run_now,
    wait_idle,
)

CYCLES = 3  # after a first one that warms the daemon up
RSS_GROWTH_BOUND_MB = 40  # generous: a leak per event or per request would pass it quickly
STALL_CAP = 64 * 1024 * 1024  # bytes a client may send without reading before we call it unbounded
# A client that never reads costs the daemon its socket buffers, the transport's buffer, at
# most MAX_BACKLOG answers and `event_queue` events: a few megabytes.
STALLED_BOUND_MB = 16


def recorded_events(state: Path, after_id: int) -> list[tuple]:
    conn = sqlite3.connect(state / "history.sqlite3")
    try:
        return list(
            conn.execute(
                "select kind, at, cycle_id, improvement_id, phase from phase_events "
                "where id > ? order by id",
                [after_id],
            )
        )
    finally:
        conn.close()


def last_event_id(state: Path) -> int:
    conn = sqlite3.connect(state / "history.sqlite3")
    try:
        return conn.execute("select coalesce(max(id), 0) from phase_events").fetchone()[0]
    finally:
        conn.close()


def key(event: dict) -> tuple:
    return (
        event["kind"],
        event["at"],
        event.get("cycle_id"),
        event.get("improvement_id"),
        event.get("phase"),
    )


def follow_with_gaps(received: list[dict], expected: list[dict]) -> list[int]:
    """Check that `received` is `expected` with gaps, each gap announced by an EventsDropped
    that counts it exactly; returns the gaps' sizes."""
    gaps = []
    at = 0
    for event in received:
        if event["kind"] == "EventsDropped":
            gaps.append(event["count"])
            at += event["count"]
            continue
        assert at < len(expected), f"an event nobody else got: {event}"
        assert event == expected[at], f"event {at}: {event} instead of {expected[at]}"
        at += 1
    assert at == len(expected), f"{len(expected) - at} events missed and never announced"
    return gaps


async def test_fifty_subscribers_a_status_stream_and_a_stalled_client_while_cycles_run(
    tmp_path, sockdir
):
    repo = findings_repo(tmp_path / "proj", modules=CYCLES + 3)
    sock = sockdir / "s.sock"
    # A small event queue, so the stalled subscriber overflows it within a few cycles.
    config = load_config(tmp_path, repo, sock, event_queue=10)
    state = tmp_path / "state"
    daemon = DaemonProcess(config, sock, log=tmp_path / "daemon.log", direct=True)
    try:
        await asyncio.to_thread(daemon.wait_ready)
        control = Subscriber(sock)  # subscribed too; it also starts cycles
        await control.start()
        subscribers = [Subscriber(sock) for _ in range(SUBSCRIBERS)]
        await asyncio.gather(*(s.start() for s in subscribers))
        stalled = Stalled(sock)
        while (await control.client.request("status"))["subscribers"] < SUBSCRIBERS + 2:
            await asyncio.sleep(0.05)
        rss = {"connected": daemon.rss_kb()}
        # It writes and never reads: the daemon must stop reading from it rather than hold
        # ever more answers.
        sent = await asyncio.to_thread(stalled.fill, STALL_CAP)
        rss["stalled"] = daemon.rss_kb()
        first_id = last_event_id(state)

        stream = StatusStream(sock)
        await stream.start()
        for n in range(1 + CYCLES):
            await run_now(control.client)
            await control.wait_for("CycleFinished", n + 1)
            if n == 0:
                await wait_idle(control.client)
                rss["warm"] = daemon.rss_kb()
        await wait_idle(control.client)
        rss["loaded"] = daemon.rss_kb()
        await stream.stop()

        # The stalled subscriber reads at last: its answers, then whatever events it still has.
        stalled.send(b'{"id": "last", "op": "ping"}\n')
        backlog = await stalled.read_until(lambda m: m.get("id") == "last")
        await control.client.request("pause", reason="load test")
        await control.client.request("resume")
        backlog += await stalled.read_until(
            lambda m: m.get("event", {}).get("kind") == "DaemonResumed"
        )
        stalled.close()
        for s in [control, *subscribers]:
            await s.wait_for("DaemonResumed")
        await wait_idle(control.client)
        recorded = recorded_events(state, first_id)
        for s in [control, *subscribers]:
            await s.close()
    finally:
        code = daemon.stop()
    log = daemon.log.read_text()
    assert code == 0, log[-3000:]
    assert '"level": "error"' not in log, log

    # Every healthy subscriber got every event, in the order emitted, none dropped.
    expected = control.events
    assert not [e for e in expected if e["kind"] == "EventsDropped"]
    for s in subscribers:
        assert s.events == expected
    # The history records every event but live progress: the same ones, in the same order.
    assert [key(e) for e in expected if e["kind"] != "PhaseProgress"] == [
        (kind, at, cycle, iid, phase) for kind, at, cycle, iid, phase in recorded
    ]
    finished = [e for e in expected if e["kind"] == "CycleFinished"]
    assert len(finished) == 1 + CYCLES and all(e["attempts"] for e in finished)
    assert [e["kind"] for e in expected[-2:]] == ["DaemonPaused", "DaemonResumed"]

    # The stalled subscriber: all its answers, and each gap in its events announced exactly.
    answers = [m for m in backlog if "event" not in m]
    assert len(answers) == 2 + stalled.pings + 1  # hello, subscribe, the pings, "last"
    assert all(m["ok"] for m in answers)
    gaps = follow_with_gaps([m["event"] for m in backlog if "event" in m], expected)
    assert gaps and sum(gaps) > 0

    # Every status request answered, while cycles ran.
    assert stream.failures == []
    assert len(stream.answers) == stream.sent > 0
    assert {a["state"] for a in stream.answers} <= {"idle", "running"}
    assert "running" in {a["state"] for a in stream.answers}
    assert max(a["subscribers"] for a in stream.answers) == SUBSCRIBERS + 2

    # Bounded memory: what the stalled client costs, and what cycles under load add.
    assert sent < STALL_CAP, "the daemon kept reading from a client that reads no answers"
    assert (rss["stalled"] - rss["connected"]) / 1024 < STALLED_BOUND_MB, rss
    assert (rss["loaded"] - rss["warm"]) / 1024 < RSS_GROWTH_BOUND_MB, rss
