"""Which configured generators may be given findings now, and why not the others.

One record per configured generator, whatever made it unusable: its check failed (a model file
that is missing, an endpoint that is not up yet at boot), or it failed on its own account during
a cycle (its model did not load, its endpoint stopped answering, it ran out of its time limit).
Either way it is given no finding until its check passes again, and the reason is shown. The
check runs again RECHECK_SECONDS after the failure, on the injected clock. A generator whose
check passes but which fails the same way once used (a model file that looks sane but does not
load) is turned off again by that failure: one wasted try per RECHECK_SECONDS, not one per
finding, and the other generators get the findings meanwhile.

Read from other threads (the daemon answers `status` while a cycle runs), so each record is
changed and read whole, under a lock; a check itself runs outside it (it may take seconds).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from overseer.base.clock import Clock, iso
from overseer.core.generate.candidate import GenerationFailed
from overseer.core.generate.generators import Generator
from overseer.vocabulary import GeneratorStatus

log = logging.getLogger(__name__)

# How long a generator that is off rests before its check runs again: long enough not to load a
# broken model over and over, short enough that a model server started after overseer (at
# boot) is used soon, without a restart.
RECHECK_SECONDS = 300.0


@dataclass
class GeneratorHealth:
    generator: Generator
    healthy: bool | None = None  # None: not checked yet
    reason: str | None = None  # why it is off
    since: datetime | None = None  # when it went off (and stayed off through failed checks)
    next_check: datetime | None = None  # when its check runs again, for people
    due: float = 0.0  # the same moment on the clock's monotonic scale, which decides

    @property
    def name(self) -> str:
        return self.generator.name

    @property
    def label(self) -> str:
        return self.generator.label

    def to_dict(self) -> GeneratorStatus:
        return {
            "name": self.name,
            "label": self.label,
            "healthy": self.healthy,
            "reason": self.reason,
            "since": iso(self.since) if self.since else None,
            "next_check": iso(self.next_check) if self.next_check else None,
        }


# Told of each check's or failure's outcome: the record, and whether it was healthy before.
OnChange = Callable[[GeneratorHealth, "bool | None"], None]


class GeneratorHealthBoard:
    def __init__(
        self,
        generators: list[Generator],
        clock: Clock,
        *,
        recheck_seconds: float = RECHECK_SECONDS,
        on_change: OnChange | None = None,
    ) -> None:
        self.records = [GeneratorHealth(g) for g in generators]
        self.clock = clock
        self.recheck_seconds = recheck_seconds
        self.on_change = on_change
        self._lock = threading.Lock()

    def usable(self) -> list[Generator]:
        """The healthy generators, in the configured order, once those due a check had it:
        every one on first use, then only those that are off and have rested long enough."""
        for record in self.records:
            if record.healthy is None or (
                record.healthy is False and self.clock.monotonic() >= record.due
            ):
                self._check(record)
        return [r.generator for r in self.records if r.healthy]

    def failed(self, generator: Generator, reason: str) -> None:
        """`generator` failed on its own account: off until its check passes again."""
        record = self._record(generator)
        if record is not None:
            self._set(record, False, reason)

    def is_healthy(self, generator: Generator) -> bool:
        # One not on the board (handed to a cycle directly) has nobody to say otherwise.
        record = self._record(generator)
        return record is None or record.healthy is not False

    def snapshot(self) -> list[GeneratorStatus]:
        with self._lock:
            return [r.to_dict() for r in self.records]

    def _record(self, generator: Generator) -> GeneratorHealth | None:
        # By identity: two `llm` entries share a name but not a model.
        return next((r for r in self.records if r.generator is generator), None)

    def _check(self, record: GeneratorHealth) -> None:
        try:
            record.generator.check()
        except GenerationFailed as exc:
            self._set(record, False, str(exc))
        except Exception as exc:  # a check that breaks must not stop every cycle
            log.exception("checking generator %s failed", record.label)
            self._set(record, False, f"its check failed: {type(exc).__name__}: {exc}")
        else:
            self._set(record, True, None)

    def _set(self, record: GeneratorHealth, healthy: bool, reason: str | None) -> None:
        with self._lock:
            before = record.healthy
            record.healthy = healthy
            record.reason = reason
            if healthy:
                record.since = record.next_check = None
            else:
                now = self.clock.now()
                if before is not False:
                    record.since = now
                record.next_check = now + timedelta(seconds=self.recheck_seconds)
                record.due = self.clock.monotonic() + self.recheck_seconds
        # A generator that stays healthy is no news; one that stays off has a new reason and
        # a new time for its next check.
        if self.on_change is not None and not (before is True and healthy):
            self.on_change(record, before)
