"""The daemon's side of each client connection: who may connect, the read loop,
backpressure, and the answers going out in order.

A new connection is judged before anything is read from it: the peer's credentials
(SO_PEERCRED), then the limits — `daemon.max_connections` for anyone, and
`daemon.reserved_for_approvers` more that only approvers may take, so the kill switch is always
reachable. A refused client gets one error line saying why and is closed.

A connection is read one line (one request) at a time; one that has not said hello within
`daemon.hello_timeout` is closed. The handshake is answered before anything else is read;
after it, each request is answered by its own task, and the answers and any subscribed events
go out through the connection's outbox (daemon/broadcast.py). What the daemon holds for a
client is bounded in bytes as well as in number: at most MAX_BACKLOG requests of at most
MAX_LINE_BYTES each are read and unanswered (beyond, nothing more is read until the client
reads its answers), and a client whose unread answers exceed `daemon.max_client_buffer_kb` is
disconnected, saying so in the log. When a burst of clients is gone, the memory they took is
given back to the system.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from overseer.config import DaemonSettings, OverseerConfig
from overseer.daemon.auth import Peer, is_approver, peer_of
from overseer.daemon.broadcast import Broadcaster, Outbox
from overseer.daemon.limits import Throttled, give_back_memory
from overseer.protocol import MAX_LINE_BYTES, ProtocolError, encode, error

log = logging.getLogger(__name__)

MAX_SKIPPED_BYTES = 64 * 1024 * 1024  # an over-long line beyond this closes the connection
# Requests read from one connection and not yet answered on the wire. Beyond it the daemon
# reads no more from that client until it reads its answers: a client that writes and never
# reads stalls itself, not the daemon's memory.
MAX_BACKLOG = 32
# Of those, how many are worked on at once: the reading threads are shared by every client,
# and one client's 32 heavy requests must not make everyone else's (a pause) wait behind them.
MAX_PARALLEL_ANSWERS = 4
# How long answers still being worked out may take to go out after the client's end of
# stream (a client may close its writing side and keep reading).
ANSWER_GRACE = 5.0
# Memory is given back to the system once this many connections fewer are open than at the
# busiest since the last time (or a client was cut off for not reading), when none has left
# for TRIM_DELAY seconds.
TRIM_AFTER_LEAVING = 8
TRIM_DELAY = 2.0
LOG_EVERY = 10.0  # refusals and cut-offs can come in floods: one log line per this at most


@dataclass(eq=False)  # one object per connection, kept in a set
class Connection:
    peer: Peer
    outbox: Outbox
    writer: asyncio.StreamWriter
    handler: asyncio.Task[Any] | None = None
    greeted: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    answering: set[asyncio.Task[None]] = field(default_factory=set)
    #: the task writing the outbox to the client
    sending: asyncio.Task[None] | None = None
    working: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(MAX_PARALLEL_ANSWERS)
    )
    #: disconnected by the daemon for holding too much it did not read
    cut_off: bool = False

    @property
    def backlog(self) -> int:
        """Requests read and not yet answered on the wire."""
        return len(self.answering) + self.outbox.responses_queued

    @property
    def held_bytes(self) -> int:
        """What the daemon holds for this client and it has not read: the outbox, and what
        the transport could not hand to the kernel yet."""
        transport = self.writer.transport
        buffered = 0 if transport.is_closing() else transport.get_write_buffer_size()
        return self.outbox.queued_bytes + buffered


Answer = Callable[[Connection, bytes], Awaitable[dict[str, Any]]]


class Connections:
    """Judges and serves each client that connects: `Listener(sock, connections.accepted)`."""

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
        #: connections let in and not yet finished (some may not be in `clients` yet)
        self.admitted = 0
        self._opening: set[asyncio.Task[None]] = set()
        self._refused = Throttled(log, LOG_EVERY)
        self._cut = Throttled(log, LOG_EVERY)
        # Giving memory back after a burst (see TRIM_AFTER_LEAVING).
        self._peak = 0
        self._someone_cut_off = False
        self._trim_timer: asyncio.TimerHandle | None = None
        self._trimming: asyncio.Task[None] | None = None
        self._closing = False

    # -- who may connect --------------------------------------------------------------------

    def accepted(self, sock: socket.socket) -> None:
        """A connection the listener just accepted, before anything is read from it."""
        try:
            peer = peer_of(sock)
        except OSError:
            sock.close()
            return
        settings = self.config().daemon
        why = self._no_room(peer, settings)
        if why is not None:
            self._refuse(sock, peer, why)
            return
        self.admitted += 1
        self._peak = max(self._peak, self.admitted)
        task = asyncio.create_task(self._open(sock, peer, settings))
        self._opening.add(task)
        task.add_done_callback(self._opening.discard)

    def _no_room(self, peer: Peer, settings: DaemonSettings) -> str | None:
        """Why this peer may not connect now, or None. Anyone may take the first
        max_connections places; only approvers the reserved ones beyond (asked only when
        those are needed: a flood costs no user lookups)."""
        cap, reserved = settings.max_connections, settings.reserved_for_approvers
        if self.admitted < cap:
            return None
        if self.admitted < cap + reserved and is_approver(peer, self.config().approvers):
            return None
        if reserved:
            places = f"{cap} (daemon.max_connections) and {reserved} more for approvers"
        else:
            places = f"{cap} (daemon.max_connections)"
        return (
            f"the daemon has {self.admitted} connections open and serves at most {places}; "
            "try again when some have closed"
        )

    def _refuse(self, sock: socket.socket, peer: Peer, why: str) -> None:
        refusal = error(None, ProtocolError("too_many_connections", "Too many connections", why))
        # One line, into the empty socket: it fits, and a client that cannot take it is gone.
        with contextlib.suppress(OSError):
            sock.send(encode(refusal))
        sock.close()
        self._refused(
            logging.WARNING,
            "refused a connection from uid %d (pid %d): %s",
            peer.uid,
            peer.pid,
            why,
        )

    async def _open(self, sock: socket.socket, peer: Peer, settings: DaemonSettings) -> None:
        loop = asyncio.get_running_loop()
        try:
            reader = asyncio.StreamReader(limit=MAX_LINE_BYTES, loop=loop)
            protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
            try:
                transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock)
            except OSError:
                sock.close()
                return
            writer = asyncio.StreamWriter(transport, protocol, reader, loop)
            await self.serve(reader, writer, peer, settings)
        finally:
            self._left()

    # -- serving one -------------------------------------------------------------------------

    async def serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Peer,
        settings: DaemonSettings,
    ) -> None:
        conn = Connection(
            peer,
            Outbox(settings.event_queue, settings.max_client_buffer_kb * 1024),
            writer,
            asyncio.current_task(),
        )
        self.clients.add(conn)
        self.broadcaster.add(conn.outbox)
        sending = asyncio.create_task(_send_loop(writer, conn.outbox))
        conn.sending = sending
        conn.tasks.add(sending)
        hello_by = asyncio.get_running_loop().time() + settings.hello_timeout
        try:
            await self._read_loop(conn, reader, sending, hello_by, settings.hello_timeout)
        finally:
            self.broadcaster.remove(conn.outbox)
            await _finish_answers(conn, sending)
            # Answers nobody will read are not worked out (a client that flooded requests and
            # left must not keep the reading threads busy for everyone else).
            for task in conn.answering:
                task.cancel()
            self.clients.discard(conn)
            await _drain_then_cancel(sending, conn.outbox)
            conn.outbox.close()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)
            if conn.cut_off:
                self._someone_cut_off = True

    async def _read_loop(
        self,
        conn: Connection,
        reader: asyncio.StreamReader,
        sending: asyncio.Task[None],
        hello_by: float,
        hello_timeout: float,
    ) -> None:
        while True:
            if conn.backlog >= MAX_BACKLOG and not await _room(conn, sending):
                return
            try:
                # Until the handshake, the whole of reading (an over-long line included)
                # has to be done by the deadline.
                async with asyncio.timeout_at(None if conn.greeted else hello_by):
                    line = await _next_line(conn, reader)
            except TimeoutError:
                self._respond(
                    conn,
                    error(
                        None,
                        ProtocolError(
                            "handshake_timeout",
                            "No hello",
                            f"no hello within {hello_timeout:g} s of connecting "
                            "(daemon.hello_timeout); the connection is closed",
                        ),
                    ),
                )
                return
            if line is None:
                return
            if not line.strip():
                continue
            if not conn.greeted:
                # The handshake is answered before anything else is read.
                response = await self.answer(conn, line)
                self._respond(conn, response)
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
        async with conn.working:
            response = await self.answer(conn, line)
        self._respond(conn, response)

    def _respond(self, conn: Connection, response: dict[str, Any]) -> None:
        """Queue an answer; a client whose unread answers now exceed its budget is cut off
        (a single answer larger than the budget still goes to a client that reads)."""
        size = conn.outbox.response(response)
        held = conn.held_bytes
        if held <= conn.outbox.max_bytes or held <= size or conn.outbox.closed:
            return
        conn.cut_off = True
        self._cut(
            logging.WARNING,
            "disconnected uid %d (pid %d): it does not read its answers, and %d KiB of them "
            "were waiting (daemon.max_client_buffer_kb: %d)",
            conn.peer.uid,
            conn.peer.pid,
            held // 1024,
            conn.outbox.max_bytes // 1024,
        )
        conn.outbox.close()  # what it holds is let go now, not when its tasks end
        conn.writer.transport.abort()
        if conn.sending is not None:  # the read loop, waiting for room, sees it is over
            conn.sending.cancel()

    async def close_all(self) -> None:
        """At shutdown: every client sees the end of its stream; handlers clean up."""
        self._closing = True
        if self._trim_timer is not None:
            self._trim_timer.cancel()
        serving = {c.handler for c in self.clients}
        for task in self._opening - serving:  # still being set up: nothing to finish
            task.cancel()
        for conn in list(self.clients):
            for task in conn.tasks:
                task.cancel()
            conn.writer.close()
        if self._opening:
            await asyncio.wait(self._opening, timeout=2)

    # -- memory back after a burst -----------------------------------------------------------

    def _left(self) -> None:
        self.admitted -= 1
        if self._someone_cut_off or self._peak - self.admitted >= TRIM_AFTER_LEAVING:
            self._postpone_trim(start=True)
        else:
            self._postpone_trim()

    def _postpone_trim(self, start: bool = False) -> None:
        """Debounced: the trim runs once connections stop leaving for a moment (new ones do
        not put it off: a steady trickle of `overseer status` would, for ever)."""
        if self._closing or (self._trim_timer is None and not start):
            return
        if self._trim_timer is not None:
            self._trim_timer.cancel()
        self._trim_timer = asyncio.get_running_loop().call_later(TRIM_DELAY, self._trim)

    def _trim(self) -> None:
        self._trim_timer = None
        if self._trimming is not None and not self._trimming.done():
            return
        self._peak = self.admitted
        self._someone_cut_off = False
        self._trimming = asyncio.create_task(self._give_back())

    async def _give_back(self) -> None:
        before, after = await asyncio.to_thread(give_back_memory)
        log.info(
            "clients gone (%d connected now): memory given back, resident %.0f MB → %.0f MB",
            self.admitted,
            before,
            after,
        )


async def _send_loop(writer: asyncio.StreamWriter, outbox: Outbox) -> None:
    try:
        while True:
            is_event, line = await outbox.queue.get()
            writer.write(line)
            outbox.sent(is_event, line)
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


async def _next_line(conn: Connection, reader: asyncio.StreamReader) -> bytes | None:
    """The next request line; None once the client is gone. A line longer than
    MAX_LINE_BYTES is refused as soon as that many bytes came without its end, and the rest
    of it is discarded as it arrives: nothing holds more of it than the reader's buffer."""
    while True:
        try:
            return await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return None  # the client went away (a partial last line is dropped)
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
                return None
        except (ConnectionError, OSError):
            return None


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
