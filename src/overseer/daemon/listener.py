"""The control socket's accept loop.

Ours rather than asyncio's `start_unix_server`: out of descriptors (EMFILE, ENFILE), asyncio's
accept path reports to the loop's exception handler on every failed accept — up to its backlog
of them per turn of the loop, each rescheduling another retry — which made thousands of log
lines a second. Here a failed accept waits (doubling, up to a second) while the connections
wait in the socket's queue, and says so in one line every ten seconds at most.

Each accepted socket goes to `accepted` before anything is read from it: the connections
(daemon/connections.py) check the peer's credentials and the limits first.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable

from overseer.daemon.limits import OUT_OF_RESOURCES, Throttled, open_file_limit

log = logging.getLogger(__name__)

BACKLOG = 128  # connections the kernel holds while the daemon is not accepting
RETRY_FIRST = 0.05  # seconds before the first retry of an accept that failed for want of fds
RETRY_MAX = 1.0
LOG_EVERY = 10.0


class Listener:
    """Accepts connections on a bound Unix socket until closed."""

    def __init__(self, sock: socket.socket, accepted: Callable[[socket.socket], None]) -> None:
        sock.listen(BACKLOG)
        sock.setblocking(False)
        self.sock = sock
        self.accepted = accepted
        self._warn = Throttled(log, LOG_EVERY)
        self._task = asyncio.create_task(self._run(), name="accept")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.0
        failures = 0
        while True:
            try:
                conn, _ = await loop.sock_accept(self.sock)
            except OSError as exc:
                if self.sock.fileno() == -1:
                    return  # closed
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                    continue  # the client gave up before we took it
                failures += 1
                delay = min(RETRY_MAX, max(RETRY_FIRST, delay * 2))
                if exc.errno in OUT_OF_RESOURCES:
                    self._warn(
                        logging.WARNING,
                        "cannot accept a connection: %s (the open-file limit is %d); "
                        "connections wait in the socket's queue, retrying every %.2g s at most",
                        exc.strerror or exc,
                        open_file_limit(),
                        RETRY_MAX,
                    )
                else:
                    self._warn(logging.ERROR, "cannot accept a connection: %s", exc)
                await asyncio.sleep(delay)
                continue
            if failures:
                log.info("accepting connections again after %d failed attempt(s)", failures)
                failures = 0
                delay = 0.0
            try:
                self.accepted(conn)
            except Exception:  # one connection's problem must not stop the accepting
                log.exception("handling a new connection failed")
                conn.close()

    def close(self) -> None:
        """Stop accepting; connections already accepted are left to their handlers."""
        self._task.cancel()
        self.sock.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
