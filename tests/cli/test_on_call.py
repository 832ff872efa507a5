"""What the on-call engineer meets at the command line (issue 15): no failure looks like
success, every state has a way out, the status says what is going on in words, and nothing
is said that does not matter."""

from __future__ import annotations

import json
import os

import pytest

from support.helpers import EVEN_FINDINGS, SUPERVISED, git, overseer, rows, write_files


def run_once(state: str, repo, *flags: str, **kw):
    return overseer("run", "--once", "--target", str(repo), "--state-dir", state, *flags, **kw)


@pytest.mark.usefixtures("warm_baseline")
def test_a_missing_test_command_is_a_red_analyze_that_settles_and_trips_nothing(tmp_path, repo):
    """The issue's reproduction: three runs with a test command that does not exist, then the
    command fixed. Each broken run fails loudly with the shell's own words; none records an
    attempt (so no finding is settled and the circuit breaker, at 3, counts nothing); the
    fixed run is a normal one that makes its change."""
    state = str(tmp_path / "state")
    for _ in range(3):
        out = run_once(
            state,
            repo,
            "--test-command",
            "no-such-command",
            "--no-dry-run",
            "--no-require-approval",
        )
        assert out.returncode == 1, out.stdout + out.stderr
        assert "✘ ANALYZE" in out.stdout and "✔ ANALYZE" not in out.stdout
        assert "the test command was not found (exit status 127)" in out.stdout
        assert "$ no-such-command" in out.stdout
        assert "│ " in out.stdout and "no-such-command: not found" in out.stdout  # its output
        assert "Cycle" in out.stdout and "finished (failed)" in out.stdout
    assert rows(tmp_path / "state") == []

    status = overseer("status", "--state-dir", state)
    assert status.returncode == 3  # no daemon
    assert "FAILED — cannot be evaluated: the test command was not found" in status.stdout
    assert "no-such-command: not found" in status.stdout  # the output's tail, in status too
    assert "PAUSED" not in status.stdout  # the breaker counted nothing
    last = json.loads(overseer("status", "--json", "--state-dir", state).stdout)["last_cycle"]
    assert last["status"] == "failed" and last["command"] == "no-such-command"
    assert "not found" in last["output_tail"]

    fixed = run_once(state, repo, "--no-dry-run", "--no-require-approval")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "✔ ANALYZE" in fixed.stdout and "already made on the same code" not in fixed.stdout
    [attempt] = rows(tmp_path / "state")
    assert attempt["status"] == "awaiting_approval"  # supervised: made, and waiting
    after = overseer("status", "--state-dir", state).stdout
    assert "cannot be evaluated" not in after and "last cycle" in after and ": ok" in after


@pytest.mark.usefixtures("warm_baseline")
def test_a_rejected_finding_is_skipped_says_why_and_can_be_retried(tmp_path, repo):
    state = str(tmp_path / "state")
    (tmp_path / "policy.yaml").write_text(SUPERVISED)
    config = tmp_path / "overseer.yaml"
    config.write_text(f"policy: policy.yaml\ntargets:\n  - path: {repo}\n    ruff_select: [F]\n")
    real = ("--config", str(config), "--state-dir", state, "--no-dry-run")
    first = overseer("run", "--once", *real)
    assert first.returncode == 0, first.stderr
    [row] = rows(tmp_path / "state")
    iid = row["improvement_id"]
    rejected = overseer("reject", iid[:8], "--reason", "not now", *real[:4])
    assert rejected.returncode == 0, rejected.stderr

    again = overseer("run", "--once", *real)
    assert again.returncode == 0, again.stderr
    assert f"(rejected {iid[:8]})" in again.stdout  # the skip names the attempt to look at
    assert "`overseer retry ID` proposes one again" in again.stdout
    assert len(rows(tmp_path / "state")) == 1

    shown = overseer("show", iid[:8], "--state-dir", state)
    assert (
        f"later cycles skip F401 in pkg/util.py: already tried on the same code: rejected — "
        f"`overseer retry {iid[:8]}` to try again" in shown.stdout
    )

    retried = overseer("retry", iid[:8], "--reason", "the freeze is over", *real[:4])
    assert retried.returncode == 0, retried.stderr
    assert f"{iid[:8]}: F401 in pkg/util.py may be proposed again" in retried.stdout
    assert retried.stderr == ""  # no "no daemon is running" chatter
    data = json.loads(overseer("show", iid, "--json", "--state-dir", state).stdout)
    assert data["status"] == "rejected"  # what happened stays true
    assert [(a["decision"], a["reason"]) for a in data["approvals"]] == [
        ("rejected", "not now"),
        ("retried", "the freeze is over"),
    ]
    assert data["approvals"][1]["uid"] == os.getuid()
    assert "retried by" in data["skipped_because"]

    twice = overseer("retry", iid, *real[:4])
    assert twice.returncode == 1 and "was retried already" in twice.stderr

    proposed = overseer("run", "--once", *real)
    assert proposed.returncode == 0, proposed.stderr
    newest = rows(tmp_path / "state")[-1]
    assert newest["improvement_id"] != iid and newest["status"] == "awaiting_approval"
    assert newest["fingerprint"] == row["fingerprint"]  # the same finding on the same code

    waiting = overseer("retry", newest["improvement_id"], *real[:4])
    assert waiting.returncode == 1
    assert "is awaiting_approval: nothing to retry (it awaits a decision" in waiting.stderr
    unknown = overseer("retry", "ffffffff", *real[:4])
    assert unknown.returncode == 1 and "no attempt ffffffff" in unknown.stderr
    no_id = overseer("retry", *real[:4])
    assert no_id.returncode == 2 and "ATTEMPT_ID" in no_id.stderr


@pytest.mark.usefixtures("warm_baseline")
def test_a_second_approval_keeps_its_reason(tmp_path, repo):
    """Approved while paused, the change waits ready to promote; approving it again (the
    person who lifts the freeze, say) is recorded with its own reason, not dropped."""
    state = str(tmp_path / "state")
    first = run_once(state, repo, "--no-dry-run")
    assert first.returncode == 0, first.stderr
    [row] = rows(tmp_path / "state")
    iid = row["improvement_id"]
    assert overseer("pause", "--reason", "release", "--state-dir", state).returncode == 0
    one = overseer("approve", iid, "--reason", "reviewed", "--state-dir", state)
    assert one.returncode == 0 and "ready to promote" in one.stdout, one.stdout + one.stderr
    two = overseer("approve", iid, "--reason", "still fine after the release", "--state-dir", state)
    assert two.returncode == 0, two.stderr
    data = json.loads(overseer("show", iid, "--json", "--state-dir", state).stdout)
    assert [(a["decision"], a["reason"]) for a in data["approvals"]] == [
        ("approved", "reviewed"),
        ("approved", "still fine after the release"),
    ]
    assert data["status"] == "ready_to_promote" and data["approved_by"]


@pytest.mark.usefixtures("warm_baseline")
def test_status_says_the_pause_and_the_budget_in_words(tmp_path, repo):
    state = str(tmp_path / "state")
    config = tmp_path / "overseer.yaml"
    config.write_text(f"targets:\n  - path: {repo}\n    ruff_select: [F]\n")
    assert run_once(state, repo).returncode == 0
    paused = overseer("pause", "--reason", "deploy freeze", "--state-dir", state)
    assert paused.returncode == 0 and paused.stderr == "", paused.stderr
    out = overseer("status", "--state-dir", state, "--config", str(config)).stdout
    user = json.loads(overseer("status", "--json", "--state-dir", state).stdout)["paused"]["user"]
    assert f" by {user} (deploy freeze) — `overseer resume` to lift it" in out
    assert "PAUSED since " in out
    assert "changes this hour 0 of 3 · today 0 of 10" in out
    assert "last cycle " in out and "(dry run): ok" in out
    assert "budget" not in out and " h · " not in out


def test_offline_commands_say_nothing_about_a_missing_daemon_unless_asked(tmp_path, repo):
    state = str(tmp_path / "state")
    assert overseer("pause", "--state-dir", state).stderr == ""
    quiet = overseer("resume", "--state-dir", state)
    assert quiet.returncode == 0 and quiet.stderr == ""
    loud = overseer("--debug", "resume", "--state-dir", state)
    assert "no daemon is running" in loud.stderr
    also = overseer("resume", "--debug", "--state-dir", state)
    assert "no daemon is running" in also.stderr


@pytest.mark.usefixtures("warm_baseline")
def test_a_dry_run_previews_the_real_run_on_the_same_head(tmp_path, repo):
    """Findings of seven kinds, each as likely as the next (no history): which comes first is
    a draw. The dry run and the real run after it draw alike (the state is the same), so the
    real run makes the change the dry run showed; and the dry run says that it previews."""
    write_files(repo, EVEN_FINDINGS)
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "findings of seven kinds")
    head = git(repo, "rev-parse", "main")
    state = str(tmp_path / "state")
    preview = run_once(state, repo)
    assert preview.returncode == 0, preview.stderr
    assert f"dry run: a real run on {head[:7]} ranks the findings the same way" in preview.stdout
    [dry] = rows(tmp_path / "state")
    assert dry["status"] == "dry_run"

    real = run_once(state, repo, "--no-dry-run")
    assert real.returncode == 0, real.stderr
    assert "ranks the findings the same way" not in real.stdout
    made = rows(tmp_path / "state")[-1]
    assert made["dry_run"] == 0 and made["base_commit"] == head
    assert (made["finding_kind"], made["target_file"]) == (dry["finding_kind"], dry["target_file"])
