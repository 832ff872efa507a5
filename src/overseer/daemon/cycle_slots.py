"""How many cycles run at once (`daemon.max_parallel_cycles`), and which goes first.

A cycle is registered when it becomes due (on the event loop, the cycles of one run-now in
the order they are due), then takes a slot in its target's lane right before it starts, and
gives it back when it ends: work that is not a cycle (a promotion, a rollback) never waits for
a slot. When slots are short, the registered target that is due longest — its last cycle
finished earliest, or never — goes first; equals go in the order they came. (A due target
whose lane is still finishing a promotion keeps its place, so a later one may wait for that
promotion.) Their test runs still share the process's one budget of test runs
(core/plumbing/slots.py).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from overseer.core.plumbing.stop import CycleStopped, StopToken


class CycleSlots:
    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._running: set[str] = set()
        # target → (last finished cycle, ISO, "" for never; arrival): the order they go in
        self._waiting: dict[str, tuple[str, int]] = {}
        self._arrivals = itertools.count()
        self._changed = threading.Condition()
        #: the most cycles that ever ran at once here (for the tests and the benchmark)
        self.peak = 0

    @property
    def limit(self) -> int:
        return self._limit

    def set_limit(self, limit: int) -> None:
        """A new limit (a reload): running cycles finish, no new one starts beyond it."""
        with self._changed:
            self._limit = max(1, limit)
            self._changed.notify_all()

    @property
    def running(self) -> set[str]:
        with self._changed:
            return set(self._running)

    @property
    def waiting(self) -> set[str]:
        with self._changed:
            return set(self._waiting)

    def register(self, target: str, last_finished: str | None) -> None:
        """`target`'s cycle is due; `last_finished`: when its last cycle finished (ISO)."""
        with self._changed:
            if target not in self._waiting:
                self._waiting[target] = (last_finished or "", next(self._arrivals))

    def withdraw(self, target: str) -> None:
        """`target`'s cycle will not start (stopped, failed before its turn)."""
        with self._changed:
            if self._waiting.pop(target, None) is not None:
                self._changed.notify_all()

    @contextmanager
    def slot(self, target: str, stop: StopToken) -> Iterator[None]:
        """Wait for a free slot and the turn of `target` (or for a stop: CycleStopped)."""
        with self._changed:
            self._waiting.setdefault(target, ("", next(self._arrivals)))
            try:
                while not self._my_turn(target):
                    if stop.stopping:
                        raise CycleStopped(f"{stop.reason}, before the cycle on {target} started")
                    self._changed.wait(0.2)
            finally:
                del self._waiting[target]
                self._changed.notify_all()  # the next in line may be the one that can go now
            self._running.add(target)
            self.peak = max(self.peak, len(self._running))
        try:
            yield
        finally:
            with self._changed:
                self._running.discard(target)
                self._changed.notify_all()

    def _my_turn(self, target: str) -> bool:
        if len(self._running) >= self._limit:
            return False
        return min(self._waiting, key=self._waiting.__getitem__) == target
