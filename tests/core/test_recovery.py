"""SIGKILL mid-cycle, then restart: no row stuck in progress, no stray worktree or process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from support.hanging import hanging_repo
from support.helpers import GIT_ENV, git, rows
from support.processes import processes_with, wait_for_phase, wait_gone, wait_started


def test_sigkill_during_evaluate_then_restart_closes_everything(tmp_path):
    repo = hanging_repo(tmp_path)
    before = git(repo, "rev-parse", "main")
    policy = tmp_path / "policy.yaml"
    policy.write_text("autonomy: limited\n")
    config = tmp_path / "overseer.yaml"
    config.write_text(
        f"policy: {policy}\ntargets:\n  - path: {repo}\n    ruff_select: [F401]\n    test_timeout: 8\n"
    )
    state = tmp_path / "state"
    args = [
        sys.executable,
        "-m",
        "overseer",
        "run",
        "--once",
        "--config",
        str(config),
        "--state-dir",
        str(state),
        "--no-dry-run",
        "--no-require-approval",
    ]
    env = {**os.environ, **GIT_ENV}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    iid = wait_for_phase(state, "EVALUATE")
    wait_started("316.5", tmp_path)  # the candidate's tests are hanging now
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert processes_with("316.5", tmp_path), (
        "the orphaned test run should still be there before recovery"
    )
    assert git(repo, "branch", "--list", f"overseer/{iid}") != ""

    restart = subprocess.run(
        args + ["--max-changes", "0"], env=env, capture_output=True, text=True, timeout=120
    )

    assert restart.returncode == 0, restart.stderr
    assert "closed 1 interrupted attempt(s)" in restart.stdout
    row = next(r for r in rows(state) if r["improvement_id"] == iid)
    assert row["status"] == "interrupted"
    assert "interrupted in phase EVALUATE" in row["failure_reason"]
    assert row["completed_at"] is not None
    assert not [r for r in rows(state) if r["status"] in ("running", "promoting")]
    assert not [c for c in rows(state, "cycles") if c["status"] == "running"]
    assert git(repo, "rev-parse", "main") == before
    assert git(repo, "branch", "--list", "overseer/*") == ""
    assert git(repo, "worktree", "list").count("\n") == 0
    assert wait_gone("316.5", tmp_path) == []  # the orphans were killed


def test_sigterm_during_evaluate_records_the_interruption_and_cleans_up(tmp_path):
    repo = hanging_repo(tmp_path)
    state = tmp_path / "state"
    args = [
        sys.executable,
        "-m",
        "overseer",
        "run",
        "--once",
        "--target",
        str(repo),
        "--state-dir",
        str(state),
        "--no-dry-run",
    ]
    proc = subprocess.Popen(
        args,
        env={**os.environ, **GIT_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    iid = wait_for_phase(state, "EVALUATE")
    wait_started("316.5", tmp_path)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "recorded as interrupted" in err
    row = next(r for r in rows(state) if r["improvement_id"] == iid)
    assert row["status"] == "interrupted"
    assert "in phase EVALUATE" in row["failure_reason"]
    [cycle] = rows(state, "cycles")
    assert cycle["status"] == "interrupted"
    assert git(repo, "branch", "--list", "overseer/*") == ""
    assert git(repo, "worktree", "list").count("\n") == 0
    assert wait_gone("316.5", tmp_path) == []
