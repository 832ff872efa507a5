"""Dry-run (the default) evaluates in isolation and changes nothing a user could see."""

from __future__ import annotations

import pytest

from support.helpers import Harness, git, overseer, rows, snapshot, write_files


@pytest.mark.usefixtures("warm_baseline")
def test_dry_run_changes_no_ref_no_file_and_records_what_it_would_do(tmp_path, repo):
    # The user has work in progress: an uncommitted edit and an untracked file.
    write_files(repo, {"pkg/__init__.py": "# mine, not committed\n", "notes.txt": "todo\n"})
    git(repo, "remote", "add", "origin", str(tmp_path / "nowhere.git"))
    before = snapshot(repo)

    h = Harness(tmp_path, repo, ruff_select=["F"])
    result = h.cycle(dry_run=True)
    h.close()

    assert snapshot(repo) == before
    [attempt] = result.attempts
    assert attempt["status"] == "dry_run"
    assert attempt["dry_run"] == 1 and attempt["was_deployed"] == 0
    assert attempt["git_branch"] is None
    assert "would promote" in attempt["failure_reason"]
    assert "-import os" in attempt["generated_code"]
    # The commit it evaluated exists only as an unreferenced object.
    assert git(repo, "branch", "--contains", attempt["git_commit_hash"]) == ""
    assert attempt["tests_passed"] == 2


def test_dry_run_is_the_default_on_the_command_line(tmp_path, repo):
    before = snapshot(repo)
    out = overseer("run", "--once", "--target", str(repo), "--state-dir", str(tmp_path / "s"))
    assert out.returncode == 0, out.stderr
    assert snapshot(repo) == before
    assert "would change pkg/util.py (quality, risk low)" in out.stdout
    assert "-import json" in out.stdout
    assert "dry run: would wait for approval" in out.stdout  # defaults: approval required too
    [row] = rows(tmp_path / "s")
    assert row["status"] == "dry_run"


@pytest.mark.usefixtures("warm_baseline")
def test_observe_autonomy_forces_dry_run_whatever_the_flags(tmp_path, repo):
    before = snapshot(repo)
    h = Harness(tmp_path, repo, policy="autonomy: observe\n", ruff_select=["F"])
    result = h.cycle(dry_run=False, require_approval=False)
    h.close()
    assert snapshot(repo) == before
    assert result.attempts[0]["status"] == "dry_run"
