"""A hanging test suite ends the cycle or attempt as failed, with the reason, and nothing left."""

from __future__ import annotations

import sys

from support.hanging import hanging_repo
from support.helpers import Harness, git, rows
from support.processes import wait_gone


def test_a_baseline_that_hangs_fails_the_cycle_and_is_killed(tmp_path, repo):
    h = Harness(
        tmp_path,
        repo,
        ruff_select=["F"],
        test_command=f"{sys.executable} -c 'import time; time.sleep(317.5)' & sleep 317.5",
        test_timeout=1,
    )
    result = h.cycle()
    h.close()
    assert result.status == "failed"
    assert "timed out after 1 s" in result.summary and "process group was killed" in result.summary
    assert result.attempts == []
    [cycle] = rows(h.state_dir, "cycles")
    assert cycle["status"] == "failed" and "timed out" in cycle["summary"]
    assert wait_gone("317.5", tmp_path) == []
    assert git(repo, "worktree", "list").count("\n") == 0


def test_a_candidate_that_hangs_fails_its_attempt_and_is_killed(tmp_path):
    repo = hanging_repo(tmp_path)
    before = git(repo, "rev-parse", "main")
    h = Harness(tmp_path, repo, ruff_select=["F401"], test_timeout=4)
    result = h.cycle()
    h.close()
    [attempt] = result.attempts
    assert attempt["status"] == "failed"
    assert "timed out after 4 s" in attempt["failure_reason"]
    assert git(repo, "rev-parse", "main") == before
    assert wait_gone("316.5", tmp_path) == []
    assert git(repo, "worktree", "list").count("\n") == 0
