"""When cycles run: APScheduler 3's AsyncIOScheduler, one cycle at a time.

The cycle job has `max_instances=1` (a cycle never overlaps the previous one), `coalesce`
(missed runs collapse into one) and a misfire grace time (a run missed by a suspend or a long
cycle still happens if it is not too late). A second job does the housekeeping: it expires
approvals no one decided and closes what a cycle that could not write the history left open.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from overseer.config import Schedule

CYCLE_JOB = "cycle"
HOUSEKEEPING_JOB = "housekeeping"


def trigger_for(schedule: Schedule) -> Any:
    if schedule.cron:
        return CronTrigger.from_crontab(schedule.cron)
    assert schedule.every is not None
    return IntervalTrigger(seconds=schedule.every)


def describe(schedule: Schedule) -> str:
    if schedule.cron:
        return f"cron {schedule.cron}"
    seconds = schedule.every or 0
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"every {seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"every {seconds / 60:g}m"
    return f"every {seconds:g}s"


class CycleScheduler:
    def __init__(
        self,
        cycle: Callable[[], Awaitable[None]],
        housekeeping: Callable[[], Awaitable[None]],
        schedule: Schedule,
        misfire_grace: float,
        housekeeping_every: float,
    ) -> None:
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self.schedule = schedule
        self.misfire_grace = misfire_grace
        self._cycle = cycle
        self.scheduler.add_job(
            cycle,
            trigger_for(schedule),
            id=CYCLE_JOB,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=int(misfire_grace),
        )
        self.scheduler.add_job(
            housekeeping,
            IntervalTrigger(seconds=housekeeping_every),
            id=HOUSEKEEPING_JOB,
            max_instances=1,
            coalesce=True,
        )

    def start(self) -> None:
        self.scheduler.start()

    def reschedule(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.scheduler.reschedule_job(CYCLE_JOB, trigger=trigger_for(schedule))

    def next_run(self) -> datetime | None:
        job = self.scheduler.get_job(CYCLE_JOB)
        return job.next_run_time if job else None

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
