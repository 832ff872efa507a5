"""Another process holds the history database's lock (someone's `sqlite3` shell, a backup):
the daemon says so clearly, records nothing half-way, leaves no worktree behind, and once the
lock is gone closes what it could not record; every invariant holds."""

from __future__ import annotations

import shlex
import sys
import time

from support.drill import JUNIT_REPORT, hold_lock, release
from support.helpers import overseer

# Quick while the flag file is absent (the seed's cycle); once it exists the tests say that
# they have started and wait for the go file, so the drill can take the lock at that moment.
GATED = (
    """
import os, sys, time
flag, reached, go = sys.argv[1:4]
if os.path.exists(flag):
    open(reached, "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.02)
from pkg.util import double
import pkg.waiting
assert double(2) == 4
"""
    + JUNIT_REPORT
)
LOCKED = "is locked by another process (waited 1 s)"


def gated(drill) -> tuple[str, dict[str, object]]:
    gate = drill.tmp / "gate"  # the confined test runs may write here (writable_paths)
    gate.mkdir(exist_ok=True)
    flag, reached, go = (gate / name for name in ("flag", "reached", "go"))
    command = " ".join(
        [shlex.quote(sys.executable), "-c", shlex.quote(GATED)] + [str(flag), str(reached), str(go)]
    )
    return command, {"test_command": command, "test_timeout": 90, "writable_paths": [str(gate)]}


def wait_for(path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def test_a_daemon_started_on_a_locked_database(drill):
    """It starts (reading works), says what is wrong, and recovers once the lock is gone."""
    waiting = drill.seed_waiting()
    drill.configure(database_lock_timeout=1, daemon={"housekeeping_every": 1})
    before = drill.before()
    locker = hold_lock(drill.database)
    try:
        daemon = drill.start().wait_ready()
        status = daemon.request("status")
        assert f"the history database {drill.database} {LOCKED}" in status["history_problem"]
        assert [p["improvement_id"] for p in status["pending_approvals"]] == [waiting]
        assert "HISTORY NOT WRITTEN" in daemon.cli("status").stdout
    finally:
        release(locker)
    deadline = time.monotonic() + 30
    while daemon.request("status")["history_problem"]:
        assert time.monotonic() < deadline, daemon.output()
        time.sleep(0.1)
    assert daemon.stop() == 0, daemon.output()
    drill.assert_invariants(before, spent=0)


def test_the_database_locked_in_the_middle_of_a_cycle(drill):
    _, target = gated(drill)
    waiting = drill.seed_waiting(**target)
    drill.configure(target=target, database_lock_timeout=1, daemon={"housekeeping_every": 1})
    (drill.tmp / "gate" / "flag").touch()
    before = drill.before()
    daemon = drill.start().wait_ready()
    daemon.run_now()
    wait_for(
        drill.tmp / "gate" / "reached"
    )  # the candidate's tests run: it has a commit, a worktree

    locker = hold_lock(drill.database)
    try:
        (drill.tmp / "gate" / "go").touch()
        daemon.wait_for_log("events are not recorded: the history database")
        deadline = time.monotonic() + 60
        while (status := daemon.request("status"))["state"] == "running":
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        # Still answering, and saying what is wrong; nothing was recorded half-way.
        assert LOCKED in status["history_problem"]
        cli = daemon.cli("status")
        assert cli.returncode == 0 and "HISTORY NOT WRITTEN: " in cli.stdout, cli.stdout
        assert [p["improvement_id"] for p in status["pending_approvals"]] == [waiting]
        [attempt] = drill.new_attempts(before)
        assert attempt["status"] == "running"  # the last thing it could write
        assert not (drill.state / "worktrees" / "proj" / attempt["improvement_id"]).exists()
        assert drill.main() == before.main
    finally:
        release(locker)

    # The housekeeping closes what the cycle could not, without waiting for another cycle.
    deadline = time.monotonic() + 30
    while drill.attempts()[attempt["improvement_id"]]["status"] == "running":
        assert time.monotonic() < deadline, daemon.output()
        time.sleep(0.1)
    assert daemon.request("status")["history_problem"] is None
    daemon.wait_for_log("is written again")
    assert daemon.stop() == 0, daemon.output()

    row = drill.attempts()[attempt["improvement_id"]]
    assert row["status"] == "interrupted" and row["completed_at"]
    assert row["failure_reason"].startswith("interrupted in phase ")
    assert (
        f"the cycle ended early: the history database {drill.database} {LOCKED}"
        in (row["failure_reason"])
    )


def test_commands_on_a_locked_database(drill):
    """`run --once` says the database is locked and does nothing; reading works meanwhile."""
    waiting = drill.seed_waiting()
    drill.configure(database_lock_timeout=1)
    before = drill.before()
    locker = hold_lock(drill.database)
    try:
        run = overseer("run", "--once", "--config", str(drill.config), "--no-dry-run")
        history = overseer("history", "--json", "--config", str(drill.config))
    finally:
        release(locker)
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"overseer: the history database {drill.database} {LOCKED}" in run.stderr
    assert "nothing more was done" in run.stderr and "Traceback" not in run.stderr
    assert history.returncode == 0, history.stderr
    assert waiting in history.stdout
    assert drill.new_attempts(before) == [] and len(drill.finished_cycles()) == before.cycles
    drill.assert_invariants(before, spent=0)
