"""SIGKILL at every phase boundary and in the middle of the commit and the promotion, then a
restart: the record is honest and every invariant of docs/architecture.md holds (see drill.py)."""

from __future__ import annotations

import json

import pytest

from support import hanging
from support.drill import FILES, TARGET
from support.helpers import git, rows
from support.processes import wait_started

# The fault point; the attempt's status right after the kill (None: no attempt yet); its
# status once the restarted daemon has recovered; whether it spent the rate limit (it made a
# commit the history knows).
KILLS = [
    ("after:ANALYZE", None, None, 0),
    ("after:GENERATE", "running", "interrupted", 0),
    ("after:SAFETY", "running", "interrupted", 0),
    ("deploy:before-commit", "running", "interrupted", 0),
    ("deploy:after-commit", "running", "interrupted", 0),
    ("after:DEPLOY", "running", "interrupted", 1),
    ("promote:before-advance", "promoting", "interrupted", 1),
    ("promote:after-advance", "promoting", "promoted", 1),
    ("promote:after-record", "promoted", "promoted", 1),
    ("after:EVALUATE", "promoted", "promoted", 1),
    ("after:LEARN", "promoted", "promoted", 1),
    ("after:RECORD", "promoted", "promoted", 1),
]


@pytest.mark.parametrize(("point", "left", "outcome", "spent"), KILLS, ids=[k[0] for k in KILLS])
def test_sigkill_then_restart(drill, point, left, outcome, spent):
    waiting = drill.seed_waiting()
    before = drill.before()
    daemon = drill.start(fault=point).wait_ready()
    daemon.run_now()
    daemon.wait_killed()

    # The kill landed where the drill says, not somewhere harmless.
    [cycle] = [c for c in rows(drill.state, "cycles") if c["status"] == "running"]
    new = drill.new_attempts(before)
    assert [a["status"] for a in new] == ([left] if left else [])
    moved = drill.main() != before.main
    assert moved == (point not in [k[0] for k in KILLS[:7]]), "main moved at the wrong point"

    drill.start().wait_ready()
    assert drill.daemons[-1].stop() == 0, drill.daemons[-1].output()

    [cycle] = [c for c in rows(drill.state, "cycles") if c["cycle_id"] == cycle["cycle_id"]]
    assert cycle["status"] == "interrupted"
    if outcome is None:
        assert drill.new_attempts(before) == []
        assert drill.main() == before.main
    else:
        [attempt] = drill.new_attempts(before)
        assert attempt["status"] == outcome
        assert json.loads(attempt["finding"])["file"] == "pkg/util.py"
        if outcome == "promoted":
            assert drill.main() == attempt["git_commit_hash"]
            assert "import json" not in git(drill.repo, "show", "main:pkg/util.py")
        else:
            assert drill.main() == before.main
            assert attempt["failure_reason"].startswith("interrupted in phase ")
    assert waiting in before.waiting
    drill.assert_invariants(before, spent=spent)


# A human's approval, then the promotion it starts is killed. Before the branch moved the
# approval must survive (the next cycle promotes); after, the restart records the promotion.
APPROVED = [
    ("promote:before-advance", "ready_to_promote"),
    ("promote:after-advance", "promoted"),
    ("promote:after-record", "promoted"),
    ("after:RECORD", "promoted"),
]


@pytest.mark.parametrize(("point", "outcome"), APPROVED, ids=[a[0] for a in APPROVED])
def test_sigkill_while_promoting_an_approved_change(drill, point, outcome):
    waiting = drill.seed_waiting()
    before = drill.before()
    daemon = drill.start(fault=point).wait_ready()
    daemon.cli("approve", waiting[:8], "--reason", "drill: looks right")  # its daemon dies
    daemon.wait_killed()

    restarted = drill.start().wait_ready()
    spent = 0
    if outcome == "ready_to_promote":
        # Still approved after the restart; the next cycle promotes it first, then makes its
        # own change (on util.py).
        assert drill.attempts()[waiting]["status"] == "ready_to_promote"
        restarted.run_now()
        drill.wait_cycles(before)
        outcome, spent = "promoted", 1
    assert restarted.stop() == 0, restarted.output()

    row = drill.attempts()[waiting]
    assert row["status"] == outcome == "promoted"
    assert row["approved_by"] and row["completed_at"]
    assert git(drill.repo, "merge-base", "--is-ancestor", row["git_commit_hash"], "main") == ""
    assert "import os" not in git(drill.repo, "show", "main:pkg/waiting.py")
    approval = drill.approvals()[-1]
    assert approval[:2] == (waiting, "approved") and approval[4] == "drill: looks right"
    drill.assert_invariants(before, spent=spent, decided={waiting: "promoted"})


def test_sigkill_while_two_targets_are_mid_cycle(make_drill):
    """Two targets' cycles at once (daemon.max_parallel_cycles 2), each with a candidate whose
    tests hang (support/hanging.py), so both are deployed in worktrees of their own and in
    EVALUATE, when the daemon is SIGKILLed; the restart settles both and every invariant holds
    for each target."""
    files = {name: text for name, text in FILES.items() if name != "pkg/waiting.py"}
    files.update({"pkg/util.py": hanging.UTIL, "tests/test_util.py": hanging.HANGS_ON_CANDIDATE})
    drills = [make_drill(files, name) for name in ("proj", "other")]
    pytest_run = {"test_command": None, "junit_xml": None, "test_timeout": 900}
    drills[0].configure(
        daemon={"max_parallel_cycles": 2, "max_test_runs": 2},
        targets=[{"name": d.name, "path": str(d.repo), **TARGET, **pytest_run} for d in drills],
    )
    befores = [d.before() for d in drills]
    daemon = drills[0].start().wait_ready()
    daemon.run_now()
    for d in drills:  # each target's candidate tests hang in its own worktree
        wait_started("316.5", d.state / "worktrees" / d.key, seconds=120)
    for d in drills:
        [attempt] = d.new_attempts(befores[drills.index(d)])
        assert (attempt["status"], attempt["phase"]) == ("running", "EVALUATE")
    daemon.kill()

    restarted = drills[0].start().wait_ready()
    assert restarted.stop() == 0, restarted.output()
    for d, before in zip(drills, befores, strict=True):
        [attempt] = d.new_attempts(before)
        assert attempt["status"] == "interrupted", attempt
        assert attempt["failure_reason"].startswith("interrupted in phase EVALUATE")
        assert d.main() == before.main
        # The spend counts the commit it made (it was recorded before EVALUATE).
        d.assert_invariants(before, spent=1)
