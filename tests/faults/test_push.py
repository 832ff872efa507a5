"""The push of the target branch fails: the promotion is recorded with the failure, nothing is
forced, and the invariants hold."""

from __future__ import annotations

import json

import pytest

from support.helpers import git, rows

# How the remote fails, and what git's refusal says (as recorded in push_result).
REMOTES = [
    ("rejected-by-hook", "drill: this remote accepts no pushes"),
    ("moved-on", "fetch first"),
    ("gone", "does not appear to be a git repository"),
]


def make_remote(drill, kind: str) -> tuple[str, str]:
    """A remote `origin` that fails the way `kind` says; returns (its main, the URL)."""
    bare = drill.tmp / "remote.git"
    git(drill.tmp, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    git(drill.repo, "remote", "add", "origin", str(bare))
    git(drill.repo, "push", "--quiet", "origin", "main")
    if kind == "rejected-by-hook":
        hook = bare / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\necho 'drill: this remote accepts no pushes' >&2\nexit 1\n")
        hook.chmod(0o755)
    elif kind == "moved-on":  # someone else pushed meanwhile: ours is no fast-forward
        other = drill.tmp / "other"
        git(drill.tmp, "clone", "--quiet", str(bare), str(other))
        (other / "THEIRS.txt").write_text("someone else's work\n")
        git(other, "add", "THEIRS.txt")
        git(other, "commit", "--quiet", "-m", "theirs")
        git(other, "push", "--quiet", "origin", "main")
    elif kind == "gone":
        git(drill.repo, "remote", "set-url", "origin", str(drill.tmp / "nowhere.git"))
    return git(bare, "rev-parse", "main"), str(bare)


@pytest.mark.parametrize(("kind", "says"), REMOTES, ids=[r[0] for r in REMOTES])
def test_a_failed_push_is_recorded_and_nothing_is_forced(drill, kind, says):
    remote_main, bare = make_remote(drill, kind)
    drill.seed_waiting()
    drill.configure(target={"push": "origin"})
    before = drill.before()
    daemon = drill.start().wait_ready()
    daemon.run_now()
    drill.wait_cycles(before)
    assert daemon.request("status")["state"] != "stopped"  # it goes on
    assert daemon.stop() == 0, daemon.output()

    [attempt] = drill.new_attempts(before)
    assert attempt["status"] == "promoted"
    assert attempt["push_result"].startswith("push to origin failed: "), attempt["push_result"]
    assert says in attempt["push_result"]
    [promoted] = [
        json.loads(e["detail"])
        for e in rows(drill.state, "phase_events")
        if e["kind"] == "ChangePromoted"
    ]
    assert promoted["pushed"] is False
    assert "push FAILED" in daemon.output()
    # Promoted here, and the remote exactly as it was: nothing forced, no candidate branch.
    assert drill.main() == attempt["git_commit_hash"]
    assert git(
        drill.tmp, "--git-dir", bare, "for-each-ref", "--format=%(refname) %(objectname)"
    ) == (f"refs/heads/main {remote_main}")
    drill.assert_invariants(before, spent=1)
