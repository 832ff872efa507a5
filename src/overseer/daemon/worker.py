"""The one worker thread: all blocking work — cycles, promotions, rollbacks, expiry — runs
here, one job at a time, in order, so a decision never races a cycle on the same repository.
The event loop only talks (to clients, to systemd, to the scheduler) and waits on it."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class Worker:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="overseer-worker")
        #: jobs queued or running
        self.queued = 0
        #: set while nothing is queued or running
        self.idle = asyncio.Event()
        self.idle.set()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work in the worker thread, after whatever is queued before it."""
        loop = asyncio.get_running_loop()
        self.queued += 1
        self.idle.clear()
        try:
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args))
        finally:
            self.queued -= 1
            if self.queued == 0:
                self.idle.set()

    @property
    def busy(self) -> bool:
        return not self.idle.is_set()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
