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


@pytest.mark.usefixtures("warm_baseline")
def test_the_ranking_is_drawn_for_the_state_not_the_run(tmp_path, repo):
    """Seven kinds of findings, each as likely as the next: a dry run and a real run on the
    same head rank all of them alike; what was learned in between draws afresh."""
    from overseer.core.analyze.rank import ranking_seed
    from support.helpers import EVEN_FINDINGS

    write_files(repo, EVEN_FINDINGS)
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "findings of seven kinds")
    h = Harness(tmp_path, repo, ruff_select=["F", "UP", "B"])
    try:
        dry = h.cycle(dry_run=True, max_changes=0)
        real = h.cycle(dry_run=False, max_changes=0)
    finally:
        h.close()
    order = [f.label for f in dry.analysis.findings]
    assert len({f.kind for f in dry.analysis.findings}) == 7, order
    assert [f.label for f in real.analysis.findings] == order
    assert dry.cycle_id != real.cycle_id
    findings, commit = dry.analysis.findings, dry.analysis.commit
    assert ranking_seed(commit, findings, {}) == ranking_seed(commit, list(findings), {})
    assert ranking_seed(commit, findings, {}) != ranking_seed(
        commit, findings, {("g", "k"): (1, 2)}
    )
    assert ranking_seed(commit, findings, {}) != ranking_seed("0" * 40, findings, {})
