"""When cycles run: APScheduler 3's AsyncIOScheduler, one cycle job per target.

A target's job runs at its own `schedule` when it has one, else at the top-level one. Each job
has `max_instances=1` (a target's cycle never overlaps its previous one), `coalesce` (missed
runs collapse into one) and a misfire grace time (a run missed by a suspend or a long cycle
still happens if it is not too late). Cycles on different targets may run at once, up to
`daemon.max_parallel_cycles` (daemon/cycle_slots.py). A second job does the housekeeping: it
expires approvals no one decided and closes what a cycle that could not write the history left
open.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from overseer.config import Schedule

CYCLE_JOB = "cycle:"  # + the target's name
HOUSEKEEPING_JOB = "housekeeping"


def trigger_for(schedule: Schedule) -> Any:
    if schedule.cron:
        return CronTrigger.from_crontab(schedule.cron)
    assert schedule.every is not None
    return IntervalTrigger(seconds=schedule.every)


class CycleScheduler:
    def __init__(
        self,
        cycle: Callable[[str], Awaitable[Any]],
        housekeeping: Callable[[], Awaitable[Any]],
        misfire_grace: float,
        housekeeping_every: float,
    ) -> None:
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self.misfire_grace = misfire_grace
        self._cycle = cycle
        #: target name → its schedule (its own, or the top-level one)
        self.schedules: dict[str, Schedule] = {}
        self.scheduler.add_job(
            housekeeping,
            IntervalTrigger(seconds=housekeeping_every),
            id=HOUSEKEEPING_JOB,
            max_instances=1,
            coalesce=True,
        )

    def start(self) -> None:
        self.scheduler.start()

    def set_targets(self, schedules: dict[str, Schedule]) -> None:
        """One cycle job per target at its schedule: new targets get one, a changed schedule
        is applied, a removed target's job goes."""
        for name in set(self.schedules) - set(schedules):
            self.scheduler.remove_job(CYCLE_JOB + name)
        for name, schedule in schedules.items():
            if name not in self.schedules:
                self.scheduler.add_job(
                    self._cycle,
                    trigger_for(schedule),
                    args=[name],
                    id=CYCLE_JOB + name,
                    name=f"cycle on {name}",
                    max_instances=1,
                    coalesce=True,
                    misfire_grace_time=int(self.misfire_grace),
                )
            elif self.schedules[name] != schedule:
                self.scheduler.reschedule_job(CYCLE_JOB + name, trigger=trigger_for(schedule))
        self.schedules = dict(schedules)

    def next_run(self, target: str | None = None) -> datetime | None:
        """When `target`'s next cycle is due; without one, the soonest of all."""
        names = [target] if target is not None else list(self.schedules)
        runs = []
        for name in names:
            job = self.scheduler.get_job(CYCLE_JOB + name)
            when = getattr(job, "next_run_time", None)  # not before the scheduler starts
            if when is not None:
                runs.append(when)
        return min(runs) if runs else None

    def describe(self, target: str) -> str | None:
        schedule = self.schedules.get(target)
        return schedule.describe() if schedule is not None else None

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
