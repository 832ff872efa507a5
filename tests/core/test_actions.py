"""The approval gate, rejection and rollback, on real repositories."""

from __future__ import annotations

import pytest

from overseer.core import actions
from overseer.core.context import Actor
from support.helpers import SUPERVISED, Harness, commit_file, git, rows, write_files

ALICE = Actor("alice", 1001)


@pytest.fixture
def supervised(tmp_path, repo):
    h = Harness(tmp_path, repo, policy=SUPERVISED, ruff_select=["F"])
    yield h
    h.close()


def waiting(h: Harness) -> dict:
    result = h.cycle()
    [attempt] = result.attempts
    assert attempt["status"] == "awaiting_approval", attempt["failure_reason"]
    return attempt


@pytest.mark.usefixtures("warm_baseline")
def test_supervised_change_waits_with_its_branch_and_worktree_kept(supervised, repo):
    before = git(repo, "rev-parse", "main")
    attempt = waiting(supervised)
    iid = attempt["improvement_id"]
    assert git(repo, "rev-parse", "main") == before
    assert git(repo, "rev-parse", f"overseer/{iid}") == attempt["git_commit_hash"]
    assert (supervised.state_dir / "worktrees").rglob(iid)
    assert attempt["approval_required"] == 1
    assert "ApprovalRequested" in supervised.kinds()
    assert attempt["completed_at"] is None
    # A waiting change is not proposed again by the next cycle.
    again = supervised.cycle()
    assert again.attempts == []
    assert f"(awaiting_approval {attempt['improvement_id'][:8]})" in again.summary


@pytest.mark.usefixtures("warm_baseline")
def test_approve_promotes_and_records_who_when_and_why(supervised, repo):
    iid = waiting(supervised)["improvement_id"]
    ctx = supervised.context()
    after = actions.approve(ctx, iid, ALICE, "looks right")
    assert after["status"] == "promoted" and after["was_deployed"] == 1
    assert after["approved_by"] == "alice"
    assert git(repo, "rev-parse", "main") == after["git_commit_hash"]
    assert "import" not in (repo / "pkg/util.py").read_text()
    [decision] = rows(supervised.state_dir, "approvals")
    assert (decision["decision"], decision["user"], decision["uid"], decision["reason"]) == (
        "approved",
        "alice",
        1001,
        "looks right",
    )
    assert git(repo, "branch", "--list", "overseer/*") == ""
    # LEARN ran once the outcome was known.
    [outcome] = rows(supervised.state_dir, "outcomes")
    assert outcome["kept"] == 1 and outcome["finding_kind"] == "F401"


@pytest.mark.usefixtures("warm_baseline")
def test_approve_waits_while_the_users_tree_has_uncommitted_changes(supervised, repo):
    iid = waiting(supervised)["improvement_id"]
    write_files(repo, {"pkg/__init__.py": "# work in progress\n"})
    before = git(repo, "rev-parse", "main")

    after = actions.approve(supervised.context(), iid, ALICE)

    assert after["status"] == "ready_to_promote"
    assert (
        "uncommitted changes" in after["failure_reason"]
        and "pkg/__init__.py" in after["failure_reason"]
    )
    assert git(repo, "rev-parse", "main") == before
    assert (repo / "pkg/__init__.py").read_text() == "# work in progress\n"
    assert "import json" in (repo / "pkg/util.py").read_text()

    # Once the tree is clean, the next cycle (or approve again) promotes it.
    git(repo, "checkout", "--", "pkg/__init__.py")
    supervised.cycle()
    row = supervised.history.get(iid)
    assert row["status"] == "promoted"
    assert git(repo, "rev-parse", "main") == row["git_commit_hash"]


@pytest.mark.usefixtures("warm_baseline")
def test_when_the_branch_moved_the_change_is_rebased_and_tested_again(supervised, repo):
    iid = waiting(supervised)["improvement_id"]
    moved = commit_file(repo, "README.md", "hello\n", "a user's commit")

    after = actions.approve(supervised.context(), iid, ALICE)

    assert after["status"] == "promoted"
    assert git(repo, "rev-parse", "main~1") == moved
    assert after["base_commit"] == moved
    assert (
        git(repo, "log", "-1", "--format=%(trailers:key=Overseer-Improvement-Id,valueonly)").strip()
        == iid
    )


@pytest.mark.usefixtures("warm_baseline")
def test_when_the_branch_moved_to_a_head_that_cannot_be_evaluated_the_change_waits(
    supervised, repo
):
    """The new head's tests cannot be collected: that is no fault of the change, which keeps
    waiting, untouched, and is promoted once the head can be evaluated again."""
    iid = waiting(supervised)["improvement_id"]
    commit = git(repo, "rev-parse", f"overseer/{iid}")
    broken = commit_file(repo, "tests/test_broken.py", "def test_(:\n", "a user's broken test")

    after = actions.approve(supervised.context(), iid, ALICE)

    assert after["status"] == "ready_to_promote"
    assert "promotion deferred: main moved to" in after["failure_reason"]
    assert "could not be collected: tests/test_broken.py" in after["failure_reason"]
    assert git(repo, "rev-parse", "main") == broken
    assert git(repo, "rev-parse", f"overseer/{iid}") == commit  # not rebased, not settled
    assert rows(supervised.state_dir, "outcomes") == []

    git(repo, "rm", "--quiet", "tests/test_broken.py")
    git(repo, "commit", "--quiet", "-m", "fix the broken test")
    fixed = git(repo, "rev-parse", "main")
    supervised.cycle()  # the next cycle promotes what was approved and waiting
    [row] = [r for r in rows(supervised.state_dir) if r["improvement_id"] == iid]
    assert row["status"] == "promoted", row["failure_reason"]
    assert git(repo, "rev-parse", "main") == row["git_commit_hash"]
    assert git(repo, "rev-parse", "main~1") == fixed  # rebased onto the fix, tested there


@pytest.mark.usefixtures("warm_baseline")
def test_when_the_branch_moved_and_the_change_conflicts_it_fails_without_forcing(supervised, repo):
    iid = waiting(supervised)["improvement_id"]
    moved = commit_file(
        repo,
        "pkg/util.py",
        "import json  # noqa: F401\nimport os  # noqa: F401\n\n\ndef double(x):\n    return x * 2\n",
    )

    after = actions.approve(supervised.context(), iid, ALICE)

    assert after["status"] == "failed"
    assert "no longer applies" in after["failure_reason"]
    assert git(repo, "rev-parse", "main") == moved


@pytest.mark.usefixtures("warm_baseline")
def test_reject_needs_a_reason_and_removes_the_branch(supervised, repo):
    iid = waiting(supervised)["improvement_id"]
    with pytest.raises(actions.ActionRefused, match="needs a reason"):
        actions.reject(supervised.context(), iid, ALICE, "  ")
    after = actions.reject(supervised.context(), iid, ALICE, "we keep json for plugins")
    assert after["status"] == "rejected"
    assert after["completed_at"] is not None
    assert git(repo, "branch", "--list", "overseer/*") == ""
    assert [d["decision"] for d in rows(supervised.state_dir, "approvals")] == ["rejected"]
    # The same change on the same code is not proposed again.
    again = supervised.cycle()
    assert again.attempts == []
    with pytest.raises(actions.ActionRefused, match="is rejected"):
        actions.approve(supervised.context(), iid, ALICE)


@pytest.mark.usefixtures("warm_baseline")
def test_rollback_reverts_with_a_new_commit_and_records_it(harness, repo):
    [attempt] = harness.cycle().attempts
    iid, commit = attempt["improvement_id"], attempt["git_commit_hash"]
    write_files(repo, {"notes.txt": "untracked work\n"})

    after = actions.rollback(harness.context(), iid, ALICE, "json is needed after all")

    head = git(repo, "rev-parse", "main")
    assert after["status"] == "rolled_back" and after["was_rolled_back"] == 1
    assert after["revert_commit_hash"] == head
    assert git(repo, "rev-parse", "main~1") == commit  # history is not rewritten
    assert "import json" in (repo / "pkg/util.py").read_text()
    assert (repo / "notes.txt").read_text() == "untracked work\n"
    message = git(repo, "log", "-1", "--format=%B")
    assert message.startswith('Revert "Autonomous improvement: quality:')
    assert f"Overseer-Improvement-Id: {iid}" in message
    assert after["rolled_back_by"] == "alice" and after["rolled_back_at"]
    assert after["rollback_reason"] == "json is needed after all"
    [outcome] = rows(harness.state_dir, "outcomes")
    assert outcome["kept"] == 0  # learned: this one was not kept
    with pytest.raises(actions.ActionRefused, match="only a promoted change"):
        actions.rollback(harness.context(), iid, ALICE)


@pytest.mark.usefixtures("warm_baseline")
def test_a_rollback_that_conflicts_is_left_for_a_human(harness, repo):
    [attempt] = harness.cycle().attempts
    later = commit_file(repo, "pkg/util.py", "def double(x):\n    return x + x\n", "rewrite")
    with pytest.raises(actions.ActionRefused, match="conflicts"):
        actions.rollback(harness.context(), attempt["improvement_id"], ALICE)
    assert git(repo, "rev-parse", "main") == later
    assert git(repo, "status", "--porcelain") == ""
    assert harness.history.get(attempt["improvement_id"])["status"] == "promoted"


@pytest.mark.usefixtures("warm_baseline")
def test_a_rejections_reason_is_shown_next_to_a_similar_proposal(supervised, repo, tmp_path):
    from support.helpers import commit_file, overseer

    iid = waiting(supervised)["improvement_id"]
    actions.reject(supervised.context(), iid, ALICE, "we re-export json for plugins")
    # The code around it changes, so the same kind of change may be proposed again.
    commit_file(
        repo,
        "pkg/util.py",
        "import json\nimport os\n\n\ndef double(x):\n    return 2 * x\n",
        "edit",
    )
    [again] = supervised.cycle().attempts
    assert again["status"] == "awaiting_approval"
    [earlier] = again["similar_rejections"]
    assert earlier["improvement_id"] == iid and earlier["reason"] == "we re-export json for plugins"
    assert earlier["user"] == "alice"
    shown = overseer(
        "show", again["improvement_id"], "--state-dir", str(supervised.state_dir)
    ).stdout
    assert (
        f"rejected before: {iid[:8]} (pkg/util.py) by alice: we re-export json for plugins" in shown
    )


def test_when_the_test_command_cannot_start_on_the_rebased_change_it_waits_untested(tmp_path, repo):
    """The branch moved; the new head's tests run, but the command cannot start on the
    rebased change (the environment, not the change: simulated by a command that exits 127
    there). The change keeps waiting with its old commit, so it is never promoted untested."""
    import sys

    command = (
        "if [ -e other.py ] && ! grep -q 'import json' pkg/util.py; then exit 127; fi; "
        f"{sys.executable} -m pytest"
    )
    h = Harness(tmp_path, repo, policy=SUPERVISED, ruff_select=["F"], test_command=command)
    try:
        attempt = waiting(h)
        moved = commit_file(repo, "other.py", "X = 1\n", "a user's commit")
        after = actions.approve(h.context(), attempt["improvement_id"], ALICE)
    finally:
        h.close()
    assert after["status"] == "ready_to_promote"
    assert "the test command could not run on the rebased change" in after["failure_reason"]
    assert after["git_commit_hash"] == attempt["git_commit_hash"]  # not the untested rebase
    assert git(repo, "rev-parse", "main") == moved
