"""The disk fills up while a cycle writes the history (RLIMIT_FSIZE: no file of the daemon or of
its commands may grow, as on a full disk), then space comes back: the daemon keeps running and
says what is wrong, the database stays intact, and once it can write again it closes what the
cycle left open; every invariant holds."""

from __future__ import annotations

import time

import pytest

# Where the disk fills: before the candidate's commit (git cannot write its objects), after it
# (the history cannot record the hash), and while promoting (the row says promoting).
POINTS = ["deploy:before-commit", "after:DEPLOY", "promote:before-advance"]


@pytest.mark.parametrize("point", POINTS)
def test_a_full_disk_during_a_cycle(drill, point):
    waiting = drill.seed_waiting()
    drill.configure(daemon={"housekeeping_every": 1})
    before = drill.before()
    daemon = drill.start(fault=f"{point}=disk-full:3").wait_ready()
    daemon.run_now()
    daemon.wait_for_log(f"fault drill: the disk is full from {point} on")

    deadline = time.monotonic() + 60
    while (status := daemon.request("status"))["state"] == "running":
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    # The cycle ended early, saying why; the daemon answers, with nothing lost.
    assert "cannot be written" in (status["history_problem"] or ""), daemon.output()
    assert [p["improvement_id"] for p in status["pending_approvals"]] == [waiting]
    assert drill.main() == before.main

    daemon.wait_for_log("has space again")
    daemon.wait_for_log("Recovered proj: closed 1 interrupted attempt(s)", seconds=30)
    assert daemon.request("status")["history_problem"] is None
    assert daemon.stop() == 0, daemon.output()

    [attempt] = drill.new_attempts(before)
    assert attempt["status"] == "interrupted" and attempt["completed_at"]
    assert "the cycle ended early: the history database" in attempt["failure_reason"]
    [cycle] = [c for c in drill.finished_cycles() if c["cycle_id"] == attempt["cycle_id"]]
    assert cycle["status"] == "interrupted" and "ended early" in cycle["summary"]
    # The commit counts against the rate limit when git could write it.
    drill.assert_invariants(before, spent=int(attempt["git_commit_hash"] is not None))
