"""Events to subscribers, never blocking the cycle or each other.

The cycle publishes from its worker thread; the broadcaster hands the event to the event
loop, which appends it to each subscriber's own outbox. A subscriber whose outbox already holds
`limit` events misses the new ones; when there is room again it is told how many it missed
(an `EventsDropped` event) before the next one. Memory per subscriber is therefore bounded.
Responses are bounded by the reader instead: it reads no further request while too many
answers wait to be sent (see the server's `MAX_BACKLOG`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from overseer.protocol import encode

log = logging.getLogger(__name__)


class Outbox:
    """What one connection will send, in order: responses, and events if subscribed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # Responses as messages; events as their encoded line, encoded once for every
        # subscriber (50 subscribers must not cost 50 encodings of each event).
        self.queue: asyncio.Queue[dict[str, Any] | bytes] = asyncio.Queue()
        self.events_queued = 0
        self.responses_queued = 0
        self.dropped = 0
        self.subscribed = False
        self.sent_some = asyncio.Event()  # set whenever a message went out

    def response(self, message: dict[str, Any]) -> None:
        self.responses_queued += 1
        self.queue.put_nowait(message)

    def event(self, data: dict[str, Any], line: bytes | None = None) -> None:
        """Queue an event; `line` is its encoded `{"event": data}` when the caller has it."""
        if self.events_queued >= self.limit:
            self.dropped += 1
            return
        if self.dropped:
            dropped = {"kind": "EventsDropped", "at": data.get("at"), "count": self.dropped}
            self._put_event(encode({"event": dropped}))
            self.dropped = 0
        self._put_event(line or encode({"event": data}))

    def _put_event(self, line: bytes) -> None:
        self.events_queued += 1
        self.queue.put_nowait(line)

    def sent(self, message: dict[str, Any] | bytes) -> None:
        if isinstance(message, bytes):
            self.events_queued -= 1
        else:
            self.responses_queued -= 1
        self.sent_some.set()


class Broadcaster:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.outboxes: set[Outbox] = set()
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def publish(self, data: dict[str, Any]) -> None:
        """From any thread."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: we are shutting down
            self.loop.call_soon_threadsafe(self._fanout, data)

    def _fanout(self, data: dict[str, Any]) -> None:
        line: bytes | None = None
        for outbox in list(self.outboxes):
            if outbox.subscribed:
                line = line or encode({"event": data})
                outbox.event(data, line)
        for listener in list(self.listeners):
            try:
                listener(data)
            except Exception:
                log.exception("event listener failed")

    def add(self, outbox: Outbox) -> None:
        self.outboxes.add(outbox)

    def remove(self, outbox: Outbox) -> None:
        self.outboxes.discard(outbox)
