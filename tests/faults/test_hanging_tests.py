"""The target's test command hangs and leaves children behind, one of them deaf to SIGTERM:
the attempt fails with the reason when its time is up, the whole process group is killed, and
the daemon goes on with every invariant intact."""

from __future__ import annotations

import shlex
import sys
import time

from support.drill import JUNIT_REPORT
from support.processes import processes_with

MARK = "318.25"  # the sleeps only this drill starts
# Quick while the flag file is absent (the seed's cycle and its cached baseline); once the drill
# creates it, the tests start two children and hang.
HANGS = (
    """
import os, subprocess, sys, time
if os.path.exists(sys.argv[1]):
    subprocess.Popen(["sleep", "{mark}"])
    subprocess.Popen(["sh", "-c", "trap '' TERM; sleep {mark}; sleep {mark}"])
    time.sleep({mark})
from pkg.util import double
import pkg.waiting
assert double(2) == 4
"""
    + JUNIT_REPORT
)


def test_a_hanging_test_command_and_its_children_are_killed(drill):
    flag = drill.tmp / "hang"
    command = " ".join(
        [shlex.quote(sys.executable), "-c", shlex.quote(HANGS.format(mark=MARK)), str(flag)]
    )
    target = {"test_command": command, "test_timeout": 3}
    drill.seed_waiting(**target)  # the baseline of main is cached: the candidate's run hangs
    drill.configure(target=target)
    flag.touch()
    before = drill.before()
    daemon = drill.start().wait_ready()
    started = time.monotonic()
    daemon.run_now()
    drill.wait_cycles(before, seconds=90)
    took = time.monotonic() - started

    [attempt] = drill.new_attempts(before)
    assert attempt["status"] == "failed"
    assert "timed out after 3 s" in attempt["failure_reason"]
    assert "process group was killed" in attempt["failure_reason"]
    assert took < 60, f"the hang was not cut short: {took:.0f} s"
    # Every child is gone, the one that ignores SIGTERM too, and the daemon still answers.
    assert processes_with(MARK, drill.tmp) == []
    status = daemon.request("status")
    assert status["state"] != "stopped" and not status.get("current_phase")
    assert daemon.stop() == 0, daemon.output()
    assert drill.main() == before.main
    drill.assert_invariants(before, spent=1, failures=1)
