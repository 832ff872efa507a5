"""Git, through GitPython: the target repository, its branches and the worktrees we own.

Overseer writes only into worktrees under its state directory and to refs it is allowed to
move. Commits are made with overseer's own identity, without the repository's hooks and without
signing, because an unattended service cannot answer a passphrase prompt or an editor.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import git
from git.exc import InvalidGitRepositoryError, NoSuchPathError

from overseer.core.plumbing import exits
from overseer.core.plumbing.spent import spending

GIT_TIMEOUT_SECONDS = 120.0

# Settings for every git command we run: no hooks, no signing, no pager, no prompts.
_GIT_OPTIONS = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "tag.gpgsign=false",
)
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "GIT_EDITOR": "true", "LC_ALL": "C"}


class RepoError(Exception):
    """A git operation failed; the message says which and why."""


_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)


def _descriptors_exhausted() -> OSError | None:
    """The error opening a file gives now, if it is that there are no descriptors left."""
    try:
        os.close(os.open(os.devnull, os.O_RDONLY))
    except OSError as exc:
        if exc.errno in _OUT_OF_DESCRIPTORS:
            return exc
    return None


def _out_of_descriptors(exc: OSError) -> str:
    if exc.errno == errno.ENFILE:
        return "too many open files in the system (ENFILE); try again when fewer are open"
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return (
        f"too many open files (EMFILE: this process has used its limit of {limit}); "
        "try again when fewer are open"
    )


@dataclass(frozen=True)
class Identity:
    name: str
    email: str

    def env(self) -> dict[str, str]:
        return {
            "GIT_AUTHOR_NAME": self.name,
            "GIT_AUTHOR_EMAIL": self.email,
            "GIT_COMMITTER_NAME": self.name,
            "GIT_COMMITTER_EMAIL": self.email,
        }


@dataclass(frozen=True)
class Worktree:
    path: Path
    head: str | None
    branch: str | None  # short name, None when detached


def run_git(
    cwd: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = GIT_TIMEOUT_SECONDS,
) -> str:
    """Run one git command in `cwd` and return its stdout; failures raise RepoError."""
    full_env = {**os.environ, **_GIT_ENV, **(env or {})}
    try:
        with spending("git"):
            proc = exits.run(
                ["git", *_GIT_OPTIONS, *args],
                cwd=cwd,
                env=full_env,
                input=stdin,
                text=True,
                timeout=timeout,
            )
    except subprocess.TimeoutExpired:
        raise RepoError(
            f"git {' '.join(args)} did not finish within {timeout:.0f} s in {cwd}"
        ) from None
    except FileNotFoundError as exc:
        raise RepoError(f"cannot run git in {cwd}: {exc}") from None
    except OSError as exc:
        if exc.errno in _OUT_OF_DESCRIPTORS:
            raise RepoError(f"cannot run git in {cwd}: {_out_of_descriptors(exc)}") from None
        raise
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        if "dubious ownership" in detail:
            # The first thing a systemd deployment meets: say what to do about it.
            raise RepoError(
                f"git refuses to work in {cwd}: the repository belongs to another user than "
                f"overseer's (uid {os.geteuid()}). Make overseer's user its owner, or trust it "
                f"for that user: `git config --global --add safe.directory {cwd}` as that user "
                f"(git says: {detail.splitlines()[0]})"
            )
        raise RepoError(
            f"git {' '.join(args)} failed in {cwd}: {detail or f'exit status {proc.returncode}'}"
        )
    out: str = proc.stdout
    return out.rstrip("\n")


class TargetRepo:
    """The target repository (its main checkout) and what we do to its refs and worktrees."""

    def __init__(self, path: Path) -> None:
        try:
            self.repo = git.Repo(str(path), search_parent_directories=False)
        except NoSuchPathError:
            raise RepoError(f"{path} does not exist") from None
        except InvalidGitRepositoryError:
            # GitPython reads .git/HEAD to decide, and takes any failure to open it for "no
            # repository": out of descriptors, that would send people looking for a problem
            # their repository does not have.
            exhausted = _descriptors_exhausted()
            if exhausted is not None:
                raise RepoError(f"cannot open {path}: {_out_of_descriptors(exhausted)}") from None
            raise RepoError(f"{path} is not a git repository (no .git there)") from None
        if self.repo.bare:
            raise RepoError(f"{path} is a bare repository; overseer needs a checkout")
        self.path = Path(self.repo.working_tree_dir or path).resolve()

    def git(self, *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
        return run_git(cwd or self.path, *args, env=env)

    def current_branch(self) -> str | None:
        """The checked-out branch; None for a detached HEAD (git says nothing then: anything
        it does say is another problem, and is raised)."""
        try:
            return self.git("symbolic-ref", "--quiet", "--short", "HEAD") or None
        except RepoError as exc:
            if "fatal:" in str(exc) or "refuses" in str(exc):
                raise
            return None

    def branch_detached_from(self) -> str | None:
        """The branch a rebase or a bisect in this checkout has detached HEAD from: still
        the branch the person works on (and the one `--abort` or `reset` returns to)."""
        git_dir = Path(self.git("rev-parse", "--absolute-git-dir"))
        for record in ("rebase-merge/head-name", "rebase-apply/head-name", "BISECT_START"):
            name = (_read(git_dir / record) or "").removeprefix("refs/heads/")
            if name and name != "detached HEAD" and self.branch_exists(name):
                return name
        return None

    def branch_head(self, branch: str) -> str:
        try:
            return self.git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}")
        except RepoError as exc:
            if "fatal:" in str(exc) or "refuses" in str(exc):
                raise
            raise RepoError(f"branch {branch!r} does not exist in {self.path}") from None

    def branch_exists(self, branch: str) -> bool:
        try:
            self.branch_head(branch)
            return True
        except RepoError:
            return False

    def refs(self) -> dict[str, str]:
        """Every ref and what it points at: for before/after comparisons."""
        out = self.git("for-each-ref", "--format=%(refname) %(objectname)")
        refs: dict[str, str] = {}
        for line in out.splitlines():
            name, _, sha = line.partition(" ")
            refs[name] = sha
        return refs

    def is_ancestor(self, commit: str, of: str) -> bool:
        try:
            self.git("merge-base", "--is-ancestor", commit, of)
            return True
        except RepoError:
            return False

    def commit_exists(self, commit: str) -> bool:
        try:
            self.git("cat-file", "-e", f"{commit}^{{commit}}")
            return True
        except RepoError:
            return False

    def worktrees(self) -> list[Worktree]:
        out = self.git("worktree", "list", "--porcelain")
        result: list[Worktree] = []
        path: Path | None = None
        head: str | None = None
        branch: str | None = None
        for line in [*out.splitlines(), ""]:
            if line.startswith("worktree "):
                path = Path(line.removeprefix("worktree "))
            elif line.startswith("HEAD "):
                head = line.removeprefix("HEAD ")
            elif line.startswith("branch "):
                branch = line.removeprefix("branch ").removeprefix("refs/heads/")
            elif not line and path is not None:
                result.append(Worktree(path, head, branch))
                path, head, branch = None, None, None
        return result

    def checkout_of(self, branch: str, trees: list[Worktree] | None = None) -> Path | None:
        """The working tree that has `branch` checked out, if any (among `trees`, the
        worktrees as just listed, when given)."""
        for tree in self.worktrees() if trees is None else trees:
            if tree.branch == branch:
                return tree.path
        return None

    def common_dir(self) -> Path:
        """The git directory all of the repository's worktrees share (`.git` of the main one)."""
        return Path(self.git("rev-parse", "--path-format=absolute", "--git-common-dir"))

    def operation_on(self, branch: str, trees: list[Worktree] | None = None) -> str | None:
        """Which working tree is in the middle of a rebase, merge, cherry-pick, revert or
        bisect of `branch`, if one is: moving the branch under it would break what a person is
        doing (`git rebase --abort` would even drop the commit that moved it). `trees`: the
        worktrees as just listed, when given."""
        ref = f"refs/heads/{branch}"
        for tree in self.worktrees() if trees is None else trees:
            try:
                git_dir = Path(run_git(tree.path, "rev-parse", "--absolute-git-dir"))
            except RepoError:
                continue  # a worktree that is gone: nobody works there
            for state in ("rebase-merge", "rebase-apply"):
                head = _read(git_dir / state / "head-name")
                if head == ref or (
                    head is None and (git_dir / state).is_dir() and tree.branch == branch
                ):
                    return f"{tree.path} is in the middle of a rebase of {branch}"
            if _read(git_dir / "BISECT_START") in (branch, ref):
                return f"{tree.path} is in the middle of a bisect of {branch}"
            if tree.branch == branch:
                for marker, what in (
                    ("MERGE_HEAD", "merge"),
                    ("CHERRY_PICK_HEAD", "cherry-pick"),
                    ("REVERT_HEAD", "revert"),
                ):
                    if (git_dir / marker).exists():
                        return f"{tree.path} is in the middle of a {what} on {branch}"
        return None

    def add_worktree(self, path: Path, commit: str, *, branch: str | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if branch:
            self.git("worktree", "add", "--quiet", "-b", branch, str(path), commit)
        else:
            self.git("worktree", "add", "--quiet", "--detach", str(path), commit)

    def remove_worktree(self, path: Path) -> None:
        """Remove one of our worktrees, even half-made ones a crash left behind."""
        try:
            self.git("worktree", "remove", "--force", "--force", str(path))
        except RepoError:
            shutil.rmtree(path, ignore_errors=True)
        self.git("worktree", "prune")

    def delete_branch(self, branch: str) -> None:
        """Delete `branch`; one that does not exist (any more) is no error."""
        try:
            self.git("branch", "-D", branch)
        except RepoError:
            # Asked only now: a branch to delete is there nearly always, and the question
            # first would cost every attempt's clean-up a git command.
            if self.branch_exists(branch):
                raise

    def update_branch(self, branch: str, new: str, old: str, message: str) -> None:
        """Move a branch that no working tree has checked out, only if it is still at `old`."""
        self.git("update-ref", "-m", message, f"refs/heads/{branch}", new, old)

    def tree_status(self, path: Path) -> list[str]:
        """Uncommitted changes to tracked files in a working tree (untracked files ignored)."""
        out = run_git(path, "status", "--porcelain", "--untracked-files=no")
        return [line for line in out.splitlines() if line.strip()]

    def commits_with_trailer(self, branch: str, trailer: str) -> dict[str, list[str]]:
        """Commits on `branch` carrying `trailer`, as {trailer value: [commit, ...]}."""
        return self.commits_with_trailers(branch, trailer)[trailer]

    def commits_with_trailers(self, branch: str, *trailers: str) -> dict[str, dict[str, list[str]]]:
        """For each trailer, the commits on `branch` carrying it, as {trailer value: [commit,
        ...]}: one walk of the branch for all of them (recovery asks for two at each cycle)."""
        fields = "%x00".join(
            f"%(trailers:key={trailer},valueonly,separator=%x01)" for trailer in trailers
        )
        greps = [f"--grep=^{trailer}:" for trailer in trailers]  # any of them
        out = self.git("log", f"--format=%H%x00{fields}", *greps, branch)
        found: dict[str, dict[str, list[str]]] = {trailer: {} for trailer in trailers}
        for line in out.splitlines():
            parts = line.split("\x00")
            if len(parts) != len(trailers) + 1:
                continue
            sha = parts[0]
            for trailer, values in zip(trailers, parts[1:], strict=True):
                for value in values.split("\x01"):
                    if value.strip():
                        found[trailer].setdefault(value.strip(), []).append(sha)
        return found


def commit_all_paths(worktree: Path, paths: list[str], message: str, identity: Identity) -> str:
    """Commit exactly `paths` in our worktree (nothing else the tests may have left there)."""
    run_git(worktree, "add", "--all", "--", *paths)
    run_git(worktree, "commit", "--quiet", "--file=-", env=identity.env(), stdin=message)
    return run_git(worktree, "rev-parse", "HEAD")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
