"""The asyncio client against a real daemon on a real socket: a cancel is never lost."""

from __future__ import annotations

import asyncio

from overseer.client import Client
from overseer.daemon.server import run_daemon


async def test_a_cancel_that_comes_as_the_answer_arrives_is_not_lost(daemon_options):
    """Ctrl-C under asyncio.run cancels the main task; one that came just as a reply arrived
    was dropped by the request's wait (asyncio.wait_for on 3.11), and the demo ran on through
    it, both cycles, and exited 0 (seen under a busy test run). The task is cancelled here the
    moment the reply's future is resolved, before the request's own wait resumes."""
    async with run_daemon(daemon_options()) as daemon, Client(daemon.socket_path) as client:
        started = asyncio.Event()

        async def asks_then_waits() -> str:
            started.set()
            await client.request("ping")
            await asyncio.sleep(5)
            return "went on after the cancel"

        task = asyncio.create_task(asks_then_waits())
        await started.wait()
        [reply] = client._pending.values()  # the request's future, resolved by the read loop
        reply.add_done_callback(lambda _: task.cancel())
        try:
            outcome = await asyncio.wait_for(asyncio.shield(task), 10)
        except asyncio.CancelledError:
            outcome = "cancelled"
        assert outcome == "cancelled"
        assert task.cancelled()
