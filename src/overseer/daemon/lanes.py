"""One lane per target: all blocking work on a target — its cycles, promotions, rollbacks,
clean-ups, recovery and expiry — runs in that target's own thread, one job at a time, in order,
so two jobs never race on one repository, and a decision on one target never waits for
another target's cycle or tests. Work that belongs to no target (the checks of every target)
runs in a lane of its own. The event loop only talks (to clients, to systemd, to the
scheduler) and waits on the lanes.

A lane's thread is made when its first job comes and kept for the daemon's life (a target
removed by a reload keeps an idle thread: a few KiB, until the restart).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from overseer.config import TargetConfig

T = TypeVar("T")

#: the lane of work that belongs to no one target
CHECKS = "checks"


def lane_of(target: TargetConfig) -> str:
    """A target's lane: its repository's directory, so two targets on one repository (two
    branches, say) take turns as well."""
    return str(target.path.expanduser().resolve())


class Lanes:
    def __init__(self) -> None:
        self._pools: dict[str, ThreadPoolExecutor] = {}
        #: jobs queued or running, per lane
        self.queued: dict[str, int] = {}
        #: jobs queued or running in all lanes (read by status requests in other threads)
        self.total = 0
        #: set while nothing is queued or running in any lane
        self.idle = asyncio.Event()
        self.idle.set()

    async def run(self, lane: str, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work in `lane`'s thread, after whatever is queued there before it."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(lane)
        if pool is None:
            pool = self._pools[lane] = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"overseer-lane-{Path(lane).name}"
            )
        self.queued[lane] = self.queued.get(lane, 0) + 1
        self.total += 1
        self.idle.clear()
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        try:
            return await loop.run_in_executor(pool, call)
        finally:
            self.queued[lane] -= 1
            self.total -= 1
            if self.queued[lane] == 0:
                del self.queued[lane]
            if not self.queued:
                self.idle.set()

    def ahead(self, lane: str) -> int:
        """Jobs queued or running in `lane` now."""
        return self.queued.get(lane, 0)

    @property
    def busy(self) -> bool:
        return not self.idle.is_set()

    def shutdown(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
