"""The daemon's side of each client connection: the read loop, backpressure, and the answers
going out in order.

A connection is read one line (one request) at a time. The handshake is answered before
anything else is read; after it, each request is answered by its own task, and the answers and
any subscribed events go out through the connection's bounded outbox (daemon/broadcast.py). A
client that writes and never reads stalls itself, not the daemon's memory: beyond MAX_BACKLOG
unanswered requests nothing more is read from it until it reads its answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from overseer.config import OverseerConfig
from overseer.daemon.auth import Peer, peer_of
from overseer.daemon.broadcast import Broadcaster, Outbox
from overseer.protocol import MAX_LINE_BYTES, ProtocolError, encode, error

MAX_SKIPPED_BYTES = 64 * 1024 * 1024  # an over-long line beyond this closes the connection
# Requests read from one connection and not yet answered on the wire. Beyond it the daemon
# reads no more from that client until it reads its answers: a client that writes and never
# reads stalls itself, not the daemon's memory.
MAX_BACKLOG = 32
# How long answers still being worked out may take to go out after the client's end of
# stream (a client may close its writing side and keep reading).
ANSWER_GRACE = 5.0


@dataclass(eq=False)  # one object per connection, kept in a set
class Connection:
    peer: Peer
    outbox: Outbox
    writer: asyncio.StreamWriter
    handler: asyncio.Task[Any] | None = None
    greeted: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    answering: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def backlog(self) -> int:
        """Requests read and not yet answered on the wire."""
        return len(self.answering) + self.outbox.responses_queued


Answer = Callable[[Connection, bytes], Awaitable[dict[str, Any]]]


class Connections:
    """Serves each client that connects: `asyncio.start_unix_server(connections.serve, …)`."""

    def __init__(
        self,
        clients: set[Connection],
        broadcaster: Broadcaster,
        answer: Answer,
        config: Callable[[], OverseerConfig],
    ) -> None:
        self.clients = clients  # the live state's: status counts them
        self.broadcaster = broadcaster
        self.answer = answer
        self.config = config  # the configuration in force: a reload replaces it

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            peer = peer_of(sock)
        except OSError:
            writer.close()
            return
        config = self.config()
        conn = Connection(
            peer,
            Outbox(config.daemon.event_queue),
            writer,
            asyncio.current_task(),
        )
        self.clients.add(conn)
        self.broadcaster.add(conn.outbox)
        sending = asyncio.create_task(_send_loop(writer, conn.outbox))
        conn.tasks.add(sending)
        try:
            await self._read_loop(conn, reader, sending)
        finally:
            self.broadcaster.remove(conn.outbox)
            await _finish_answers(conn, sending)
            self.clients.discard(conn)
            await _drain_then_cancel(sending, conn.outbox)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _read_loop(
        self, conn: Connection, reader: asyncio.StreamReader, sending: asyncio.Task[None]
    ) -> None:
        while True:
            if conn.backlog >= MAX_BACKLOG and not await _room(conn, sending):
                return
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                return  # the client went away (a partial last line is dropped)
            except asyncio.LimitOverrunError as exc:
                conn.outbox.response(
                    error(
                        None,
                        ProtocolError(
                            "line_too_long",
                            "Request too long",
                            f"a request line may be at most {MAX_LINE_BYTES} bytes; it was skipped",
                        ),
                    )
                )
                if not await _skip_line(reader, exc.consumed):
                    return
                continue
            except (ConnectionError, OSError):
                return
            if not line.strip():
                continue
            if not conn.greeted:
                # The handshake is answered before anything else is read.
                response = await self.answer(conn, line)
                conn.outbox.response(response)
                if response.get("error", {}).get("type") == "protocol_mismatch":
                    await asyncio.sleep(0.05)
                    return
                continue
            task = asyncio.create_task(self._answer(conn, line))
            conn.tasks.add(task)
            conn.answering.add(task)
            task.add_done_callback(conn.tasks.discard)
            task.add_done_callback(conn.answering.discard)

    async def _answer(self, conn: Connection, line: bytes) -> None:
        conn.outbox.response(await self.answer(conn, line))

    async def close_all(self) -> None:
        """At shutdown: every client sees the end of its stream; handlers clean up."""
        for conn in list(self.clients):
            for task in conn.tasks:
                task.cancel()
            conn.writer.close()
        handlers = [c.handler for c in self.clients if c.handler is not None]
        if handlers:
            await asyncio.wait(handlers, timeout=2)


async def _send_loop(writer: asyncio.StreamWriter, outbox: Outbox) -> None:
    try:
        while True:
            message = await outbox.queue.get()
            writer.write(message if isinstance(message, bytes) else encode(message))
            outbox.sent(message)
            await writer.drain()
    except (ConnectionError, OSError):
        pass


async def _room(conn: Connection, sending: asyncio.Task[None]) -> bool:
    """Wait until the client has read enough answers to be given more; False if it is gone."""
    while conn.backlog >= MAX_BACKLOG:
        if sending.done():
            return False
        conn.outbox.sent_some.clear()
        waiter = asyncio.ensure_future(conn.outbox.sent_some.wait())
        try:
            await asyncio.wait({waiter, sending}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
    return True


async def _finish_answers(conn: Connection, sending: asyncio.Task[None]) -> None:
    """Requests read before the end of the client's stream are still answered, unless the
    client is gone altogether (its answers cannot be sent) or they take too long."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ANSWER_GRACE
    while conn.answering and not sending.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        await asyncio.wait(
            {*conn.answering, sending}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
        )


async def _drain_then_cancel(task: asyncio.Task[None], outbox: Outbox) -> None:
    """Let queued responses go out (briefly), then stop the sender."""
    for _ in range(20):
        if outbox.queue.empty() or task.done():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _skip_line(reader: asyncio.StreamReader, buffered: int) -> bool:
    """Discard the rest of an over-long line; False if the client went away or kept going."""
    skipped = 0
    while skipped < MAX_SKIPPED_BYTES:
        await reader.readexactly(buffered)
        skipped += buffered
        try:
            await reader.readuntil(b"\n")
            return True
        except asyncio.LimitOverrunError as exc:
            buffered = exc.consumed
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return False
    return False
