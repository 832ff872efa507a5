"""DEPLOY: apply a validated candidate in its own worktree and commit it there.

The worktree lives in overseer's state directory and was checked out (detached) at the base
commit when the candidate was generated. A real run commits on branch `overseer/<id>`; a dry
run commits on a detached HEAD, so no ref of the target repository changes.
"""

from __future__ import annotations

from pathlib import Path

from overseer.base.terminal import visible
from overseer.core.generate.candidate import Candidate
from overseer.core.plumbing.faults import fault_point
from overseer.core.plumbing.repo import Identity, commit_all_paths, run_git
from overseer.core.plumbing.secrets import redact

TRAILER = "Overseer-Improvement-Id"
ROLLBACK_TRAILER = "Overseer-Reverts"


def branch_name(improvement_id: str) -> str:
    return f"overseer/{improvement_id}"


def commit_message(candidate: Candidate, improvement_id: str, risk: str, reasons: list[str]) -> str:
    lines = [
        f"Autonomous improvement: {candidate.change_type}: {candidate.summary}",
        "",
        candidate.rationale,
        "",
        f"Finding: {candidate.finding.label}: {candidate.finding.message}",
        f"Impact: {candidate.impact}",
        f"Risk: {risk} ({'; '.join(reasons)})",
        f"Generator: {candidate.generator}",
        "",
        f"{TRAILER}: {improvement_id}",
    ]
    # The parts came redacted from their sources; this is the last line before git, forever.
    # A file name or a model's words may hold terminal escapes: `git log` would act on them.
    return visible(redact("\n".join(lines) + "\n"), lines=True)


def apply_changes(candidate: Candidate, tree: Path) -> None:
    for change in candidate.changes:
        path = tree / change.path
        if change.after is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(change.after, encoding="utf-8")


def deploy(
    candidate: Candidate,
    tree: Path,
    *,
    improvement_id: str,
    message: str,
    identity: Identity,
    branch: str | None,
) -> str:
    """Apply and commit; returns the commit hash. `branch` None means a detached (dry-run) commit."""
    if branch:
        run_git(tree, "switch", "--quiet", "-c", branch)
    apply_changes(candidate, tree)
    fault_point("deploy:before-commit")
    return commit_all_paths(tree, list(candidate.paths), message, identity)
