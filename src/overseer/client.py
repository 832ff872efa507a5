"""The asyncio client of the daemon's socket, used by the TUI and by the CLI's commands that
follow events (no core imports); a command with one request uses oneshot.py, without asyncio.

async with Client(path) as client:
    status = await client.request("status")
    await client.request("subscribe")
    async for event in client.events():
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from overseer.oneshot import (
    ConnectionLost,
    DaemonError,
    DaemonForbidden,
    DaemonUnavailable,
    cannot_connect,
    check_socket,
    error_of,
    hello_args,
    lost,
    request_line,
)

# The errors are the one-shot client's (oneshot.py), the same whichever client raised them.
__all__ = [
    "Client",
    "ConnectionLost",
    "DaemonError",
    "DaemonForbidden",
    "DaemonUnavailable",
    "call",
    "run_now_when_free",
]

# Responses can be large (a diff, a page of history); requests are small.
READ_LIMIT = 64 * 1024 * 1024


class Client:
    def __init__(self, socket_path: Path, *, name: str = "overseer-cli") -> None:
        self.socket_path = socket_path
        self.name = name
        self.hello: dict[str, Any] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._reading: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        # What the daemon last said without an id: why it refused the connection (too many
        # connections, no hello in time) or a line. Raised, if it then closes, instead of
        # "connection lost", so the person sees why.
        self.refused: DaemonError | None = None

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, timeout: float = 5.0) -> dict[str, Any]:
        path = self.socket_path
        check_socket(path)
        try:
            async with asyncio.timeout(timeout):  # not wait_for: see request()
                self._reader, self._writer = await asyncio.open_unix_connection(
                    str(path), limit=READ_LIMIT
                )
        except (TimeoutError, OSError) as exc:
            raise cannot_connect(path, exc) from None
        self._reading = asyncio.create_task(self._read_loop())
        self.hello = await self.request("hello", **hello_args(self.name))
        return self.hello

    async def _read_loop(self) -> None:
        import json

        assert self._reader is not None
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if "event" in message:
                    self._events.put_nowait(message["event"])
                    continue
                if message.get("id") is None and isinstance(message.get("error"), dict):
                    self.refused = error_of(message)
                    continue
                future = self._pending.pop(message.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(message)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(self.refused or lost())
            self._pending.clear()
            self._events.put_nowait(None)
            self.closed.set()

    async def request(self, op: str, timeout: float | None = 30.0, **args: Any) -> Any:
        if self._writer is None or self.closed.is_set():
            raise ConnectionLost("not connected to the daemon")
        request_id = next(self._ids)
        line = request_line(request_id, op, args)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self._writer.write(line)
        try:
            await self._writer.drain()
            # Not asyncio.wait_for: on Python 3.11 it returns the answer and drops a cancel
            # (Ctrl-C under asyncio.run) that comes as the answer arrives; a timeout scope
            # leaves the cancel to the caller (tests/daemon/test_client.py).
            async with asyncio.timeout(timeout):
                message = await future
        except (ConnectionError, BrokenPipeError):
            # The daemon may have said why before it closed: read that first.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    await self.closed.wait()
            self._pending.pop(request_id, None)
            if future.done():
                future.exception()  # what it holds is raised here, not "never retrieved"
            else:
                future.cancel()
            raise self.refused or lost() from None
        except TimeoutError:
            self._pending.pop(request_id, None)
            raise DaemonError(
                "timeout", "No answer", f"the daemon did not answer {op} in time"
            ) from None
        if message.get("ok"):
            return message.get("result")
        raise error_of(message)

    async def stats(self, target: str | None = None) -> dict[str, Any]:
        """What has worked, as `overseer stats` shows it: by change type and risk, by area,
        the finding kinds, repair rounds, the new-tests funnel per generator and the
        predictor; for one target (its name) or all."""
        args: dict[str, Any] = {} if target is None else {"target": target}
        result: dict[str, Any] = await self.request("stats", **args)
        return result

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Events after `subscribe`, until the connection closes."""
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
        self.closed.set()


async def call(socket_path: Path, op: str, **args: Any) -> Any:
    """One request on a fresh connection: what most CLI commands need."""
    async with Client(socket_path) as client:
        return await client.request(op, **args)


async def run_now_when_free(client: Client, patience: float = 30.0, poll: float = 0.2) -> None:
    """Ask for a cycle; the daemon may still be closing the last one (its promotions after
    CycleFinished), so a busy answer is asked again every `poll` seconds for `patience`."""
    deadline = time.monotonic() + patience
    while True:
        try:
            await client.request("run_now")
            return
        except DaemonError as exc:
            if exc.type != "busy" or time.monotonic() > deadline:
                raise
            await asyncio.sleep(poll)
