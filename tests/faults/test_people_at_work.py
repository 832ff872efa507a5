"""A person at work in the repository overseer supervises is never overruled: a branch someone
is rebasing, merging, cherry-picking or bisecting does not move (the change waits as
`ready_to_promote`, saying why, and promotes once they are done); a second overseer, with
another state directory, is told which one supervises the repository and touches nothing of
it; and a reviewer's shell in a waiting change's worktree outlives every restart, while what
a killed overseer had started is killed."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys

import pytest

from overseer.core import actions
from overseer.core.context import Actor
from overseer.core.lifecycle import ActionRefused
from support.daemons import DaemonProcess
from support.drill import JUNIT_REPORT
from support.helpers import (
    GIT_ENV,
    LIMITED,
    SUPERVISED,
    Harness,
    daemon_config,
    git,
    overseer,
    rows,
    snapshot,
    write_files,
)
from support.processes import processes_with, wait_gone, wait_started

ALICE = Actor("alice", 1001)


# -- a branch someone is in the middle of -------------------------------------------------------


def rebasing(repo) -> None:
    """`git rebase -i` that stopped (here at an `exec` that failed): main is checked out
    nowhere, HEAD is detached, and `git rebase --abort` puts main back where it was."""
    out = git_may_fail(repo, "rebase", "--exec", "false", "--root")
    assert "rebase" in out
    assert (repo / ".git" / "rebase-merge" / "head-name").read_text().strip() == "refs/heads/main"


def merging(repo) -> None:
    git(repo, "switch", "--quiet", "-c", "topic")
    write_files(repo, {"NOTES.md": "from the topic\n"})
    git(repo, "add", "NOTES.md")
    git(repo, "commit", "--quiet", "-m", "topic")
    git(repo, "switch", "--quiet", "main")
    git(repo, "merge", "--quiet", "--no-ff", "--no-commit", "topic")
    assert (repo / ".git" / "MERGE_HEAD").exists()


def cherry_picking(repo) -> None:
    git(repo, "switch", "--quiet", "-c", "topic")
    for n in (3, 4):  # the second commit no longer applies to main's line
        write_files(repo, {"pkg/util.py": f"def double(x):\n    return x * {n}\n"})
        git(repo, "commit", "--quiet", "-am", f"times {n}")
    git(repo, "switch", "--quiet", "main")
    git_may_fail(repo, "cherry-pick", "topic")
    assert (repo / ".git" / "CHERRY_PICK_HEAD").exists()


def bisecting(repo) -> None:
    git(repo, "bisect", "start")


BUSY = {
    "rebase": (rebasing, ["rebase", "--abort"]),
    "merge": (merging, ["merge", "--abort"]),
    "cherry-pick": (cherry_picking, ["cherry-pick", "--abort"]),
    "bisect": (bisecting, ["bisect", "reset"]),
}


def git_may_fail(repo, *args: str) -> str:
    """A git command that stops half-way, as a person's rebase or cherry-pick may."""
    out = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, env={**os.environ, **GIT_ENV}
    )
    assert out.returncode != 0, f"git {' '.join(args)} was expected to stop: {out.stdout}"
    return out.stdout + out.stderr


@pytest.mark.usefixtures("warm_baseline")
@pytest.mark.parametrize("what", list(BUSY))
def test_an_approval_waits_while_someone_is_in_the_middle_of_the_branch(tmp_path, repo, what):
    start, finish = BUSY[what]
    h = Harness(tmp_path, repo, policy=SUPERVISED, ruff_select=["F"])
    try:
        [attempt] = h.cycle().attempts
        iid = attempt["improvement_id"]
        assert attempt["status"] == "awaiting_approval"
        main = git(repo, "rev-parse", "refs/heads/main")
        start(repo)

        after = actions.approve(h.context(), iid, ALICE, "looks right")
        assert after["status"] == "ready_to_promote"
        assert f"in the middle of a {what}" in after["failure_reason"], after["failure_reason"]
        assert "main is moved once that is finished" in after["failure_reason"]
        assert git(repo, "rev-parse", "refs/heads/main") == main
        h.cycle()  # the next cycle tries again, and waits again
        assert h.history.get(iid)["status"] == "ready_to_promote"
        assert git(repo, "rev-parse", "refs/heads/main") == main

        git(repo, *finish)  # they are done; what they did is as they left it
        assert git(repo, "rev-parse", "refs/heads/main") == main
        h.cycle()
        row = h.history.get(iid)
        assert row["status"] == "promoted", row["failure_reason"]
        assert git(repo, "rev-parse", "refs/heads/main") == row["git_commit_hash"]
        assert git(repo, "symbolic-ref", "HEAD") == "refs/heads/main"
        assert git(repo, "status", "--porcelain") == ""  # the checkout moved with its branch
    finally:
        h.close()


@pytest.mark.usefixtures("warm_baseline")
def test_a_cycle_that_may_promote_itself_waits_for_a_rebase_to_end(tmp_path, repo):
    h = Harness(tmp_path, repo, policy=LIMITED, ruff_select=["F"])
    try:
        main = git(repo, "rev-parse", "refs/heads/main")
        rebasing(repo)
        [attempt] = h.cycle().attempts
        assert attempt["status"] == "ready_to_promote"
        assert "in the middle of a rebase of main" in attempt["failure_reason"]
        assert git(repo, "rev-parse", "refs/heads/main") == main

        # What issue 14 saw: `git rebase --abort` dropped the commit overseer had put on main,
        # while the history said promoted. Now there is none to drop.
        git(repo, "rebase", "--abort")
        assert git(repo, "rev-parse", "refs/heads/main") == main
        h.cycle()
        row = h.history.get(attempt["improvement_id"])
        assert row["status"] == "promoted"
        promoted = git(repo, "rev-parse", "refs/heads/main")
        assert promoted == row["git_commit_hash"]

        # A rollback neither: it is refused, saying why, until the rebase is over.
        rebasing(repo)
        with pytest.raises(ActionRefused, match="in the middle of a rebase of main"):
            actions.rollback(h.context(), row["improvement_id"], ALICE, "regression")
        assert git(repo, "rev-parse", "refs/heads/main") == promoted
        git(repo, "rebase", "--abort")
        after = actions.rollback(h.context(), row["improvement_id"], ALICE, "regression")
        assert after["status"] == "rolled_back"
        assert git(repo, "rev-parse", "refs/heads/main") == after["revert_commit_hash"]
    finally:
        h.close()


# -- a second overseer ---------------------------------------------------------------------------


@pytest.mark.usefixtures("warm_baseline")
def test_a_second_state_directory_is_told_who_supervises_and_touches_nothing(
    tmp_path, repo, sockdir
):
    first = Harness(tmp_path, repo, policy=SUPERVISED, ruff_select=["F"])
    try:
        [attempt] = first.cycle().attempts
        assert attempt["status"] == "awaiting_approval"
    finally:
        first.close()
    before = snapshot(repo)
    assert f"refs/heads/overseer/{attempt['improvement_id']}" in before["refs"]
    other = tmp_path / "other-state"

    out = overseer(
        "run", "--once", "--target", str(repo), "--state-dir", str(other), "--no-dry-run"
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert f"is supervised by the overseer whose state directory is {first.state_dir}" in (
        out.stderr
    ), out.stderr
    assert snapshot(repo) == before  # its branches, worktrees and checkout: untouched
    assert rows(other) == []

    # A daemon there does not start (rather than answer "cycle started" and fail each time).
    (tmp_path / "second").mkdir()
    config, _ = daemon_config(tmp_path / "second", repo, sockdir / "s.sock")
    daemon = DaemonProcess(config, sockdir / "s.sock")
    assert daemon.proc.wait(timeout=60) == 1, daemon.output()
    said = daemon.output()
    assert "the daemon did not start" in said and "Traceback" not in said, said
    assert f"is supervised by the overseer whose state directory is {first.state_dir}" in said
    assert snapshot(repo) == before

    # The first one carries on as before.
    again = Harness(tmp_path, repo, policy=SUPERVISED, ruff_select=["F"])
    try:
        after = actions.approve(again.context(), attempt["improvement_id"], ALICE)
        assert after["status"] == "promoted"
    finally:
        again.close()


# -- a reviewer's shell --------------------------------------------------------------------------

REVIEWER = "317.25"  # the reviewer's `sleep`: a marker no other test starts
ORPHAN = "318.5"  # what the candidate's tests start, and a SIGKILLed daemon leaves behind
# The drill's test command, but the candidate's run (util.py without `import json`) hangs,
# with a child process, until the daemon running it is killed. (The marker is only in the
# child's command line, so that the command itself is never taken for it.)
HANGING = f"{shlex.quote(sys.executable)} -c " + shlex.quote(
    "import subprocess, time\n"
    "if 'import json' not in open('pkg/util.py').read():\n"
    "    subprocess.Popen(['sleep', '%d.5' % 318])\n"
    "    time.sleep(600)\n" + JUNIT_REPORT
)


def test_a_reviewers_shell_outlives_restarts_and_what_a_killed_daemon_started_does_not(drill):
    waiting = drill.seed_waiting()
    [tree] = (drill.state / "worktrees").glob(f"*/{waiting}")
    # Someone reviews the waiting change in its worktree, in a session of their own.
    reviewer = subprocess.Popen(["sleep", REVIEWER], cwd=tree, start_new_session=True)
    try:
        before = drill.before()
        clean = drill.start().wait_ready()  # start-up recovery
        assert clean.stop() == 0, clean.output()
        once = overseer("run", "--once", "--config", str(drill.config), "--max-changes", "0")
        assert once.returncode == 0, once.stderr  # its recovery too
        assert reviewer.poll() is None, "recovery killed the reviewer's process"

        drill.configure(target={"test_command": HANGING})
        killed = drill.start().wait_ready()
        killed.run_now()
        orphans = wait_started(ORPHAN, drill.state)
        assert list((drill.state / "started").glob("*.json")), "the test run was not recorded"
        killed.kill()  # SIGKILL: the test run it started is orphaned, still running
        assert set(orphans) <= set(processes_with(ORPHAN, drill.state))

        restarted = drill.start().wait_ready()
        assert wait_gone(ORPHAN, drill.state) == [], "the orphaned test run is still there"
        assert restarted.stop() == 0, restarted.output()
        assert reviewer.poll() is None, "recovery killed the reviewer's process"
        assert not list((drill.state / "started").glob("*.json"))
    finally:
        reviewer.kill()
        reviewer.wait()
        for pid in processes_with(ORPHAN, drill.state):  # if the test failed before recovery
            with contextlib.suppress(OSError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
    assert drill.attempts()[waiting]["status"] == "awaiting_approval"
    drill.assert_invariants(before, spent=1)  # the interrupted attempt had made its commit
