"""Git failing for want of file descriptors says so: a daemon flooded with connections once
reported its own target as "not a git repository"."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from overseer.core.deploy.promote import advance_branch
from overseer.core.plumbing import repo as repo_module
from overseer.core.plumbing.repo import TargetRepo
from support.helpers import commit_file, git

# In a child process: lowering the limit here would starve the test run itself.
OUT_OF_FDS = r"""
import json, os, resource, sys
from pathlib import Path
from overseer.core.plumbing.repo import RepoError, TargetRepo, run_git

repo = Path(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
held = []
while True:
    try:
        held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        break
said = {}
for name, attempt in (("open", lambda: TargetRepo(repo)), ("run", lambda: run_git(repo, "status"))):
    try:
        attempt()
        said[name] = "worked"
    except RepoError as exc:
        said[name] = str(exc)
for fd in held:
    os.close(fd)
said["after"] = TargetRepo(repo).current_branch()
print(json.dumps(said))
"""


def test_out_of_descriptors_is_not_reported_as_no_repository(repo):
    out = subprocess.run(
        [sys.executable, "-c", OUT_OF_FDS, str(repo)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    said = json.loads(out.stdout)
    for name in ("open", "run"):
        assert "too many open files" in said[name], said
        assert "not a git repository" not in said[name], said
    assert said["after"] == "main"  # the same repository, once descriptors are free again


@pytest.fixture
def git_commands(monkeypatch):
    """The git commands TargetRepo runs (their arguments), as they run."""
    ran: list[tuple[str, ...]] = []
    run = repo_module.run_git

    def counted(cwd, *args, **kwargs):
        ran.append(args)
        return run(cwd, *args, **kwargs)

    monkeypatch.setattr(repo_module, "run_git", counted)
    return ran


def test_deleting_a_branch_is_one_git_command_and_a_missing_one_is_no_error(repo, git_commands):
    target = TargetRepo(repo)
    git(repo, "branch", "overseer/abc")
    target.delete_branch("overseer/abc")
    assert git_commands == [("branch", "-D", "overseer/abc")]
    assert not target.branch_exists("overseer/abc")
    target.delete_branch("overseer/abc")  # gone already


def test_commits_with_several_trailers_in_one_walk(repo, git_commands):
    commit_file(repo, "a.txt", "a", "one\n\nOverseer-Improvement-Id: i1\n")
    commit_file(repo, "b.txt", "b", "two\n\nOverseer-Reverts: c1\nOverseer-Improvement-Id: i2\n")
    commit_file(repo, "c.txt", "c", "three\n\nmentions Overseer-Reverts: in its text only\n")
    target = TargetRepo(repo)
    both = target.commits_with_trailers("main", "Overseer-Improvement-Id", "Overseer-Reverts")
    assert len(git_commands) == 1
    one = target.commits_with_trailer("main", "Overseer-Improvement-Id")
    assert both["Overseer-Improvement-Id"] == one and set(one) == {"i1", "i2"}
    assert both["Overseer-Reverts"] == target.commits_with_trailer("main", "Overseer-Reverts")
    assert list(both["Overseer-Reverts"]) == ["c1"]
    assert both["Overseer-Reverts"]["c1"] == one["i2"]


def test_a_promotion_lists_the_worktrees_once(repo, git_commands):
    git(repo, "checkout", "-q", "-b", "side")
    new = commit_file(repo, "n.txt", "n", "new")
    git(repo, "checkout", "-q", "main")
    target = TargetRepo(repo)
    assert advance_branch(target, "main", new, require_clean=True, message="m").moved
    assert git(repo, "rev-parse", "main") == new
    assert [c[:2] for c in git_commands].count(("worktree", "list")) == 1
