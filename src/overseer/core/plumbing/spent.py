"""Time spent waiting for external programs — the target's tests, ruff, git — per thread.

A phase reads the totals when it starts and when it finishes: the difference says how much of
the phase was the target's own work, and the rest is overseer's (the supervisor's share, which
`bench/cycle_overhead.py` reports). Per thread because the daemon runs several targets'
cycles at once, each in its target's lane, while its event loop may run git for a status
request at the same time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_local = threading.local()


def totals() -> dict[str, float]:
    """Seconds spent so far in this thread, by kind of program."""
    return dict(getattr(_local, "totals", {}))


@contextmanager
def spending(kind: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        counts = getattr(_local, "totals", None)
        if counts is None:
            counts = _local.totals = {}
        counts[kind] = counts.get(kind, 0.0) + time.monotonic() - started


def since(before: dict[str, float]) -> dict[str, float]:
    """Milliseconds spent by kind since `before` (a result of totals()), rounded."""
    now = totals()
    return {
        kind: round((now[kind] - before.get(kind, 0.0)) * 1000, 1)
        for kind in sorted(now)
        if now[kind] > before.get(kind, 0.0)
    }
