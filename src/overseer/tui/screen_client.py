"""The TUI's client: every answer and event it hands the screens has its control characters
made visible. A file name, a reason or a test's output may hold terminal escapes (an OSC 52
clipboard write, a cursor move); on the screen they are shown as `\\x1b…`, never acted on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from overseer.base.terminal import visible_all
from overseer.client import Client


class ScreenClient(Client):
    async def request(self, op: str, timeout: float | None = 30.0, **args: Any) -> Any:
        return visible_all(await super().request(op, timeout, **args))

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        async for event in super().events():
            yield visible_all(event)
