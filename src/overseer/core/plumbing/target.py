"""A target repository as a cycle sees it: its settings, identity, checkout and branch."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from overseer.config import TargetConfig
from overseer.core.plumbing.repo import RepoError, TargetRepo


@dataclass(frozen=True)
class Target:
    config: TargetConfig
    name: str
    root: Path
    branch: str

    @property
    def key(self) -> str:
        """Unique per repository, readable in paths: two repos may share a directory name."""
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:6]
        return f"{self.name}-{digest}"

    def repo(self) -> TargetRepo:
        return self._repo

    @cached_property
    def _repo(self) -> TargetRepo:
        # Opened once per resolution (a cycle's context, an action's): a cycle asked for it a
        # dozen times, each opening the repository again with GitPython (0.5 ms). The target
        # was checked when it was resolved; a repository removed since makes the next git
        # command fail (RepoError) as it would have made the next opening.
        return TargetRepo(self.root)


def resolve_target(config: TargetConfig) -> Target:
    """Check the repository and settle the branch; errors say what to fix."""
    repo = TargetRepo(config.path)
    # In the middle of a rebase or bisect HEAD is detached, and the branch is still theirs.
    branch = config.branch or repo.current_branch() or repo.branch_detached_from()
    if not branch:
        raise RepoError(
            f"{repo.path} has a detached HEAD; set `branch:` for this target or check out a branch"
        )
    repo.branch_head(branch)  # exists?
    name = config.name or repo.path.name
    return Target(config=config, name=name, root=repo.path, branch=branch)
