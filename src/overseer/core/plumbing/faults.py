"""Fault injection points: where the fault drills (tests/faults/) make this process fail.

A long-running service gets SIGKILLed (the OOM killer, `systemctl kill`, a power cut) and runs
out of disk at any moment. The drills prove that the record stays honest whatever the moment,
and they need the moment to be exact, not a race: the code calls `fault_point(name)` at the
places where a failure is most dangerous, and a drill starts the daemon with

    OVERSEER_FAULT=<point>[=<action>][,<point>[=<action>] …]

Actions:
- `kill` (the default): SIGKILL this process right there. Nothing of ours runs after it: no
  `finally`, no handler, no flush — exactly what a real SIGKILL leaves behind.
- `disk-full[:SECONDS]`: from there on no file of this process, nor of the commands it starts,
  may grow (RLIMIT_FSIZE drops to 0, and SIGXFSZ is ignored, so writes fail with EFBIG), as
  when the disk fills up; with SECONDS, space is freed again after that long (the limit is
  lifted; commands started meanwhile keep theirs). The process keeps running and must cope.

The points, in the order a cycle meets them (the phase names are `events.Phase`'s):
- `after:<PHASE>` for each of the seven phases: the phase's events and its row are written,
  the next phase has not started;
- `deploy:before-commit`: the candidate branch exists and the change is written into the
  worktree, nothing is committed;
- `deploy:after-commit`: the commit is on `overseer/<id>`; the row does not know its hash yet;
- `promote:before-advance`: the row says promoting; the target branch has not moved;
- `promote:after-advance`: the target branch (and a clean checkout that has it) moved to the
  change; the row still says promoting;
- `promote:after-push`: the target branch was pushed (when the target pushes); not recorded;
- `promote:after-record`: the row says promoted; the candidate's worktree and branch are
  still there.

Unset, `fault_point` costs one truth test: the variable is read once, at import.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import threading

log = logging.getLogger(__name__)

PHASES = ("ANALYZE", "GENERATE", "SAFETY", "DEPLOY", "EVALUATE", "LEARN", "RECORD")
POINTS = (
    *(f"after:{phase}" for phase in PHASES),
    "deploy:before-commit",
    "deploy:after-commit",
    "promote:before-advance",
    "promote:after-advance",
    "promote:after-push",
    "promote:after-record",
)
ACTIONS = ("kill", "disk-full")
ENV = "OVERSEER_FAULT"


def _seconds(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


def parse(spec: str) -> dict[str, str]:
    """`point[=action],…` as {point: action}; an unknown point or action is an error, so a
    drill with a typo fails loudly instead of never firing."""
    armed: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        point, _, action = item.partition("=")
        action = action or "kill"
        if point not in POINTS:
            raise ValueError(f"{ENV}: unknown fault point {point!r}; known: {', '.join(POINTS)}")
        name, _, seconds = action.partition(":")
        if name not in ACTIONS or (seconds and (name != "disk-full" or not _seconds(seconds))):
            raise ValueError(
                f"{ENV}: unknown action {action!r} at {point}; known: kill, disk-full[:SECONDS]"
            )
        armed[point] = action
    return armed


_ARMED = parse(os.environ.get(ENV, ""))


def fault_point(name: str) -> None:
    """Fail here if a drill asked for it (see the module's docstring); otherwise nothing."""
    if not _ARMED:
        return
    action = _ARMED.get(name)
    if action == "kill":
        log.warning("fault drill: SIGKILL at %s", name)
        os.kill(os.getpid(), signal.SIGKILL)
    elif action and action.startswith("disk-full"):
        _, _, seconds = action.partition(":")
        log.warning(
            "fault drill: the disk is full from %s on%s",
            name,
            f", for {seconds} s" if seconds else "",
        )
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        # Python ignores SIGXFSZ already (so a write fails with EFBIG instead of killing us),
        # but subprocess restores its default in children: git would die mid-write, leaving
        # its `.lock` files, where a real full disk gives it ENOSPC and it cleans up. Blocked
        # in this thread (children inherit the mask, not undone by subprocess), the signal
        # stays pending and their writes fail too, as on a full disk.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGXFSZ})
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
        if seconds:
            freed = threading.Timer(float(seconds), _free_disk, (name, soft, hard))
            freed.daemon = True
            freed.start()


def _free_disk(name: str, soft: int, hard: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    log.warning("fault drill: the disk filled at %s has space again", name)
