"""A resolved target opens its repository once, however often a cycle asks for it."""

from __future__ import annotations

import shutil

import pytest

from overseer.config import TargetConfig
from overseer.core.plumbing.repo import RepoError
from overseer.core.plumbing.target import resolve_target


def test_a_target_opens_its_repository_once(repo):
    target = resolve_target(TargetConfig(path=repo))
    assert target.branch == "main" and target.root == repo.resolve()
    assert target.repo() is target.repo()
    assert target.repo().branch_head("main") == target.repo().git("rev-parse", "HEAD")


def test_a_repository_removed_after_the_resolution_still_fails_loudly(repo, tmp_path):
    target = resolve_target(TargetConfig(path=repo))
    target.repo()
    shutil.move(repo, tmp_path / "moved")
    with pytest.raises(RepoError):
        target.repo().branch_head("main")
    with pytest.raises(RepoError, match="does not exist"):
        resolve_target(TargetConfig(path=repo))  # the next cycle's context says why
