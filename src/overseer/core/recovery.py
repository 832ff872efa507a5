"""Start-up recovery: close what a killed process left behind, so the record stays honest.

Runs under the target's lock, so nothing it finds in progress has a live owner. An attempt
left `running` or `promoting` is settled by what git says: if its commit is on the target
branch it was promoted (the row is completed to say so); a human-approved one whose promotion
died before the branch moved is approved still, and the next cycle promotes it; otherwise it
is `interrupted` with the phase it died in. An attempt whose outcome was settled but whose
LEARN and RECORD never ran (the process died in between) is learned from and closed now.
Worktrees and `overseer/*` branches that belong to no waiting attempt are removed; those of
attempts awaiting a decision survive restarts.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field

from overseer.core.context import Context
from overseer.core.deploy.commit import ROLLBACK_TRAILER, TRAILER, branch_name
from overseer.core.lifecycle import finish_attempt, move
from overseer.core.plumbing import started
from overseer.core.plumbing.repo import RepoError, TargetRepo
from overseer.core.record.history import History, UnknownAttempt
from overseer.vocabulary import (
    FINAL,
    IN_PROGRESS,
    WAITING,
    AttemptsRecovered,
    AttemptStatus,
    CycleStatus,
    IllegalMove,
)

log = logging.getLogger(__name__)


@dataclass
class Recovery:
    closed: list[str] = field(default_factory=list)
    promoted: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)  # approved, back to ready_to_promote
    finished: list[str] = field(default_factory=list)  # settled, then LEARN and RECORD run now
    worktrees_removed: int = 0
    branches_removed: int = 0

    @property
    def anything(self) -> bool:
        return bool(
            self.closed
            or self.promoted
            or self.resumed
            or self.finished
            or self.worktrees_removed
            or self.branches_removed
        )


def recover(ctx: Context, cause: str | None = None) -> Recovery:
    """Settle what was left in progress. `cause` says why it was left (the daemon's cycle that
    ended early says what stopped it); by default the process that owned it stopped."""
    history, target = ctx.history, ctx.target
    repo = ctx.repo()
    result = Recovery()
    now = history.now()
    # One walk of the branch for both trailers; nothing below moves it before they are read.
    trailers = repo.commits_with_trailers(target.branch, TRAILER, ROLLBACK_TRAILER)
    on_branch = trailers[TRAILER]
    for row in history.attempts(target=target.name, statuses=IN_PROGRESS):
        iid, commit = row["improvement_id"], row.get("git_commit_hash")
        if commit and not row.get("dry_run") and repo.is_ancestor(commit, target.branch):
            # Closed below, with LEARN and RECORD, like any promoted attempt.
            move(
                ctx,
                iid,
                AttemptStatus.PROMOTED,
                was_deployed=1,
                promoted_at=row.get("promoted_at") or now,
                failure_reason="promoted; the process stopped before recording it (recovered at start-up)",
            )
            result.promoted.append(iid)
        elif (
            row["status"] == AttemptStatus.PROMOTING
            and row.get("approved_by")
            and _intact(repo, iid, commit)
        ):
            # A human's decision is not lost to a crash: the change waits, approved, as when
            # the target was busy at the time of the approval.
            move(
                ctx,
                iid,
                AttemptStatus.READY_TO_PROMOTE,
                reason=f"approved by {row['approved_by']}; promotion pending (the process "
                "stopped while promoting it; recovered at start-up)",
            )
            result.resumed.append(iid)
        else:
            move(
                ctx,
                iid,
                AttemptStatus.INTERRUPTED,
                reason=f"interrupted in phase {row.get('phase') or 'unknown'}: "
                + (cause or "the process stopped before the attempt finished"),
                completed_at=now,
            )
            result.closed.append(iid)
    # A commit on the branch whose row does not say so (killed between moving and recording).
    # One this history does not know is another state directory's (or an older one's): normal
    # for a repository once supervised from elsewhere, so said once, quietly.
    unknown: list[str] = []
    for iid, commits in on_branch.items():
        try:
            row = history.get(iid)
        except UnknownAttempt:
            unknown.append(commits[0][:7])
            continue
        if (
            not row["was_deployed"]
            and not row.get("dry_run")
            and row.get("git_commit_hash") in commits
        ):
            try:
                move(ctx, iid, AttemptStatus.PROMOTED, was_deployed=1, promoted_at=now)
            except IllegalMove as exc:  # git says promoted; the row says it settled otherwise
                log.warning("commit %s of %s is on %s: %s", commits[0][:7], iid, target.branch, exc)
                continue
            result.promoted.append(iid)
    if unknown:
        log.debug(
            "%d commit(s) on %s carry a %s this history does not know (made from another state "
            "directory?): %s",
            len(unknown),
            target.branch,
            TRAILER,
            ", ".join(unknown[:5]) + (" …" if len(unknown) > 5 else ""),
        )
    # A revert on the branch whose row does not say so (killed between reverting and recording).
    for reverted, reverts in trailers[ROLLBACK_TRAILER].items():
        for row in history.attempts(target=target.name, statuses=(AttemptStatus.PROMOTED,)):
            if row.get("git_commit_hash") == reverted and not row["was_rolled_back"]:
                move(
                    ctx,
                    row["improvement_id"],
                    AttemptStatus.ROLLED_BACK,
                    was_rolled_back=1,
                    rolled_back_at=now,
                    revert_commit_hash=reverts[0],
                    rollback_reason="reverted; the process stopped before recording it (recovered at start-up)",
                )
                result.closed.append(row["improvement_id"])
    result.finished = _finish_settled(ctx)
    with history.transaction():
        history.db.execute(
            "update cycles set status = ?, finished_at = ?, summary = coalesce(summary, ?) "
            "where target = ? and status = ?",
            [
                CycleStatus.INTERRUPTED,
                now,
                f"interrupted: {cause or 'the process stopped during the cycle'}",
                target.name,
                CycleStatus.RUNNING,
            ],
        )
    waiting = {r["improvement_id"] for r in history.attempts(target=target.name, statuses=WAITING)}
    result.worktrees_removed = _clean_worktrees(ctx, waiting)
    result.branches_removed = _clean_branches(ctx, waiting)
    if result.anything:
        ctx.bus.emit(
            AttemptsRecovered(
                target=target.name,
                closed=result.closed,
                promoted=result.promoted,
                worktrees_removed=result.worktrees_removed,
            )
        )
    return result


def _finish_settled(ctx: Context) -> list[str]:
    """LEARN and RECORD for attempts whose outcome is settled but which were never closed: the
    process died between deciding (promoting, failing, denying) and recording, so the outcome
    was neither learned from nor closed with `completed_at`."""
    finished = []
    for iid in ctx.history.unclosed(ctx.target.name, FINAL):
        finish_attempt(ctx, iid)
        finished.append(iid)
    return finished


def _clean_worktrees(ctx: Context, keep: set[str]) -> int:
    repo = ctx.repo()
    root = ctx.state.worktrees / ctx.target.key
    # Under the lock nothing of ours runs there now: what a killed run started is orphaned.
    killed = started.kill_orphans(ctx.state.started, root)
    if killed:
        log.warning("killed what a stopped run had started and left running: %s", ", ".join(killed))
    removed = 0
    registered = {w.path.resolve() for w in repo.worktrees()}
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            if entry.name in keep:
                continue
            if entry.resolve() in registered:
                repo.remove_worktree(entry)
            else:
                shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    repo.git("worktree", "prune")
    return removed


def _clean_branches(ctx: Context, keep: set[str]) -> int:
    """Delete `overseer/<id>` branches of finished attempts; never a branch we did not make.

    Ours are those whose tip carries our trailer for that id, and those named after an attempt
    of this target in the history: a process killed between creating the branch and
    committing on it leaves one that still points at the base commit.
    """
    repo, history = ctx.repo(), ctx.history
    out = repo.git("for-each-ref", "--format=%(refname:short)", "refs/heads/overseer/")
    removed = 0
    for name in out.splitlines():
        iid = name.removeprefix("overseer/")
        if iid in keep or name != branch_name(iid):
            continue
        try:
            message = repo.git("log", "-1", "--format=%B", name)
        except RepoError:
            continue
        if f"{TRAILER}: {iid}" not in message and not _attempt_of(history, iid, ctx.target.name):
            continue  # not ours
        repo.delete_branch(name)
        removed += 1
    return removed


def _intact(repo: TargetRepo, improvement_id: str, commit: str | None) -> bool:
    """The attempt's branch is still at its commit: it can be promoted as it was approved."""
    branch = branch_name(improvement_id)
    return bool(commit) and repo.branch_exists(branch) and repo.branch_head(branch) == commit


def _attempt_of(history: History, improvement_id: str, target: str) -> bool:
    try:
        return history.get(improvement_id)["target"] == target
    except UnknownAttempt:
        return False
