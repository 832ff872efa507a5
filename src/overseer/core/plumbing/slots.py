"""One budget of concurrent test runs for the whole process: a cycle's baseline and candidate
run at once, the cycles of several targets, a flaky test's reruns and the post-promotion watch
all take a slot before their test command starts, and never more run at once than the limit
(`daemon.max_test_runs`, by default the machine's cores)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from overseer.core.plumbing.stop import CycleStopped


def default_limit() -> int:
    return os.cpu_count() or 1


class TestSlots:
    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, limit: int | None = None) -> None:
        self._limit = limit or default_limit()
        self._running = 0
        self._peak = 0
        self._changed = threading.Condition()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def running(self) -> int:
        return self._running

    @property
    def peak(self) -> int:
        """The most test runs that ever ran at once here (for the tests and the benchmarks)."""
        return self._peak

    def set_limit(self, limit: int | None) -> None:
        """A new limit (None: the cores); runs already going finish, no new one starts beyond it."""
        with self._changed:
            self._limit = max(1, limit or default_limit())
            self._changed.notify_all()

    @contextmanager
    def slot(self, cancel: threading.Event | None = None) -> Iterator[None]:
        """Wait for a free slot (or for `cancel`: CycleStopped), hold it while the body runs."""
        with self._changed:
            while self._running >= self._limit:
                if cancel is not None and cancel.is_set():
                    raise CycleStopped("stopped while waiting for a free test slot")
                self._changed.wait(0.2)
            self._running += 1
            self._peak = max(self._peak, self._running)
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()


#: The process's one budget.
TEST_SLOTS = TestSlots()
