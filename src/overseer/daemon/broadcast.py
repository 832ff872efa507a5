"""Events to subscribers, never blocking the cycle or each other.

Cycles publish from their targets' lanes (threads); the broadcaster hands each event to the
event loop (in the order each lane emitted them), which encodes it once, whole, and appends it to each subscriber's own outbox. A subscriber whose outbox already holds
`limit` events, or half its byte budget in events, misses the new ones; when there is room
again it is told how many it missed (an `EventsDropped` event) before the next one. Memory per
subscriber is therefore bounded. Responses are bounded by the reader instead: it reads no
further request while too many answers wait to be sent, and a client whose unread answers
exceed the byte budget is disconnected (daemon/connections.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, ClassVar

from overseer.protocol import encode

log = logging.getLogger(__name__)


class Outbox:
    """What one connection will send, in order: responses, and events if subscribed, each as
    its encoded line (so what it holds is known in bytes)."""

    #: events dropped for slow clients in this process, every connection's (the metrics')
    dropped_total: ClassVar[int] = 0

    def __init__(self, limit: int, max_bytes: int) -> None:
        self.limit = limit  # events
        self.max_bytes = max_bytes  # the client's budget: events may take half of it
        # (is it an event, the line): events are encoded once for every subscriber (50
        # subscribers must not cost 50 encodings of each event).
        self.queue: asyncio.Queue[tuple[bool, bytes]] = asyncio.Queue()
        self.events_queued = 0
        self.responses_queued = 0
        self.event_bytes = 0
        self.response_bytes = 0
        self.dropped = 0
        self.subscribed = False
        self.closed = False  # its client was cut off: nothing more is queued
        self.sent_some = asyncio.Event()  # set whenever a message went out

    @property
    def queued_bytes(self) -> int:
        return self.event_bytes + self.response_bytes

    def response(self, message: dict[str, Any]) -> int:
        """Queue a response; the size of its line."""
        if self.closed:
            return 0
        line = encode(message)
        self.responses_queued += 1
        self.response_bytes += len(line)
        self.queue.put_nowait((False, line))
        return len(line)

    def event(self, data: dict[str, Any], line: bytes | None = None) -> None:
        """Queue an event; `line` is its encoded `{"event": data}` when the caller has it."""
        if self.closed:
            return
        line = line or encode({"event": data})
        if self.events_queued >= self.limit or self.event_bytes + len(line) > self.max_bytes // 2:
            self.dropped += 1
            Outbox.dropped_total += 1
            return
        if self.dropped:
            dropped = {"kind": "EventsDropped", "at": data.get("at"), "count": self.dropped}
            self._put_event(encode({"event": dropped}))
            self.dropped = 0
        self._put_event(line)

    def _put_event(self, line: bytes) -> None:
        self.events_queued += 1
        self.event_bytes += len(line)
        self.queue.put_nowait((True, line))

    def sent(self, is_event: bool, line: bytes) -> None:
        if is_event:
            self.events_queued -= 1
            self.event_bytes -= len(line)
        else:
            self.responses_queued -= 1
            self.response_bytes -= len(line)
        self.sent_some.set()

    def close(self) -> None:
        """Let go of everything queued: its client will never read it."""
        self.closed = True
        while not self.queue.empty():
            self.sent(*self.queue.get_nowait())


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
