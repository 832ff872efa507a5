"""Moving the target branch: promotion of an evaluated change, and its rollback by revert.

The branch only ever moves forward (fast-forward to a commit that contains it), so no one's
commit is lost and nothing is force-pushed. When the branch is checked out in someone's
working tree, that tree has to move with it, or its files would silently disagree with its
branch: promotion then requires the tree to be clean and fast-forwards it with git's own
`merge --ff-only`; with uncommitted work there the tree is left alone and the change waits.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from overseer.core.plumbing.repo import Identity, RepoError, TargetRepo, run_git


@dataclass(frozen=True)
class Advance:
    moved: bool
    reason: str | None = None  # why not, when not moved
    stale: bool = False  # the branch moved away from the commit's base: rebase and retest


def advance_branch(
    repo: TargetRepo, branch: str, new: str, *, require_clean: bool, message: str
) -> Advance:
    """Fast-forward `branch` to `new`, moving a working tree that has it checked out.

    Never while someone is rebasing, merging, cherry-picking, reverting or bisecting it: the
    change waits until they are done."""
    trees = repo.worktrees()  # listed once for both questions below
    busy = repo.operation_on(branch, trees)
    if busy:
        return Advance(False, f"{busy}; {branch} is moved once that is finished")
    tip = repo.branch_head(branch)
    if tip == new:
        return Advance(True)
    if not repo.is_ancestor(tip, new):
        return Advance(False, f"{branch} moved to {tip[:7]} since the change was made", stale=True)
    checkout = repo.checkout_of(branch, trees)
    if checkout is None:
        try:
            repo.update_branch(branch, new, tip, message)
        except RepoError as exc:
            return Advance(False, f"{branch} could not be moved: {exc}", stale=True)
        return Advance(True)
    if require_clean:
        dirty = repo.tree_status(checkout)
        if dirty:
            names = ", ".join(line[3:] for line in dirty[:3]) + (" …" if len(dirty) > 3 else "")
            return Advance(
                False,
                f"{checkout} has {branch} checked out with uncommitted changes ({names}); "
                "that tree is left alone until it is clean",
            )
    try:
        run_git(checkout, "merge", "--ff-only", "--quiet", new)
    except RepoError as exc:
        return Advance(False, f"git refused to fast-forward {checkout}: {exc}")
    return Advance(True)


def rebase(tree: Path, onto: str, identity: Identity) -> str | None:
    """Replay the candidate commit in `tree` onto `onto`; None if it no longer applies."""
    try:
        run_git(tree, "rebase", "--quiet", onto, env=identity.env())
    except RepoError:
        with contextlib.suppress(RepoError):
            run_git(tree, "rebase", "--abort")
        return None
    return run_git(tree, "rev-parse", "HEAD")


class RevertConflict(Exception):
    pass


def make_revert(tree: Path, commit: str, message: str, identity: Identity) -> str:
    """Commit the revert of `commit` in `tree` (checked out at the branch tip)."""
    try:
        run_git(tree, "revert", "--no-commit", commit, env=identity.env())
    except RepoError as exc:
        with contextlib.suppress(RepoError):
            run_git(tree, "revert", "--abort")
        raise RevertConflict(str(exc)) from None
    run_git(tree, "commit", "--quiet", "--file=-", env=identity.env(), stdin=message)
    return run_git(tree, "rev-parse", "HEAD")


def push(repo: TargetRepo, remote: str, branch: str) -> str:
    """Push the branch (never forced); the result is recorded, a failure is not fatal."""
    try:
        repo.git("push", "--quiet", remote, f"refs/heads/{branch}:refs/heads/{branch}")
    except RepoError as exc:
        return f"push to {remote} failed: {exc}"
    return f"pushed {branch} to {remote}"


def delete_remote_branch(repo: TargetRepo, remote: str, branch: str) -> None:
    """Remove a candidate branch pushed for CI, once its attempt is settled (best effort)."""
    with contextlib.suppress(RepoError):
        repo.git("push", "--quiet", remote, "--delete", f"refs/heads/{branch}")
