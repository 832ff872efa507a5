"""SAFETY: may this candidate be applied, and what would it take to promote it?

Two kinds of check, both on facts measured from the candidate rather than on what its
generator claims: validation (is it a well-formed change to files inside this repository?)
and the policy's verdict (how risky, and who must agree). Rate limits come last.
"""

from __future__ import annotations

import ast
import json
import os
import tomllib
from pathlib import Path, PurePosixPath

import yaml

from overseer.core.analyze import coverage, features
from overseer.core.analyze.features import removed_xfail_marks
from overseer.core.generate.candidate import Candidate, Edit, EditRejected, FileChange, apply_edits
from overseer.core.safety.oracle import (
    examine,
    feature_test_edits,
    is_test_path,
    new_test_problems,
)
from overseer.core.safety.policy import SELF_PROTECTED, CandidateFacts

MAX_FILE_BYTES = 1024 * 1024


def check_path(tree: Path, raw: str) -> str | None:
    """Why `raw` may not be written inside `tree`, or None when it may."""
    if not raw or "\x00" in raw or "\\" in raw:
        return f"path {raw!r} is empty or has NUL or backslash characters"
    posix = PurePosixPath(raw)
    if posix.is_absolute():
        return f"path {raw} is absolute; changes must name files inside the repository"
    if ".." in posix.parts:
        return f"path {raw} climbs out with '..'"
    if ".git" in posix.parts:
        return f"path {raw} is inside git's own data (.git)"
    if str(posix) != raw or raw in (".", ""):
        # `./.github/x` would slip past the protected pattern `.github/**`: one spelling only.
        return f"path {raw} is not normalised (write it as {str(posix)!r})"
    root = tree.resolve()
    current = tree
    for part in posix.parts:
        current = current / part
        if current.is_symlink():
            return f"path {raw} goes through the symlink {current.relative_to(tree)}"
    resolved = (tree / raw).resolve()
    if not resolved.is_relative_to(root):
        return f"path {raw} resolves outside the worktree"
    return None


def _syntax_problem(path: str, text: str) -> str | None:
    suffix = PurePosixPath(path).suffix
    try:
        if suffix in (".py", ".pyi"):
            ast.parse(text, filename=path)
        elif suffix == ".json":
            json.loads(text)
        elif suffix == ".toml":
            tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            yaml.safe_load(text)
    except SyntaxError as exc:
        return f"{path} would not parse: {exc.msg} (line {exc.lineno})"
    except (ValueError, yaml.YAMLError) as exc:
        return f"{path} would not parse: {str(exc).splitlines()[0]}"
    return None


def materialize(candidate: Candidate, tree: Path) -> list[str]:
    """Turn a candidate's edits into whole-file changes; the reasons it cannot be, if any.

    Every path is checked before its file is read, so a hostile path is never even opened.
    """
    if not candidate.edits:
        return []
    problems: list[str] = []
    by_path: dict[str, list[Edit]] = {}
    for edit in candidate.edits:
        by_path.setdefault(edit.path, []).append(edit)
    changes = []
    for path, edits in by_path.items():
        why = check_path(tree, path)
        if why:
            problems.append(why)
            continue
        file = tree / path
        if (
            coverage.is_test_writing(candidate.finding)
            and not file.exists()
            and len(edits) == 1
            and not edits[0].search
        ):
            # A new test file: the one kind of change that creates a file (an empty search).
            changes.append(FileChange(path, None, edits[0].replace))
            continue
        if not file.is_file():
            problems.append(f"{path} does not exist; an edit can only change an existing file")
            continue
        if file.stat().st_size > MAX_FILE_BYTES:
            problems.append(f"{path} is larger than {MAX_FILE_BYTES} bytes")
            continue
        try:
            before = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            problems.append(f"{path} is not UTF-8 text")
            continue
        try:
            changes.append(FileChange(path, before, apply_edits(path, before, edits)))
        except EditRejected as exc:
            problems.append(str(exc))
    if not problems:
        candidate.changes = changes
        candidate.edits = []
    return problems


def validate(candidate: Candidate, tree: Path) -> list[str]:
    """Every reason the candidate is not a well-formed change to this worktree."""
    problems = materialize(candidate, tree)
    if problems:
        return problems
    if not candidate.changes:
        return ["the candidate changes nothing"]
    problems = []
    seen: set[str] = set()
    for change in candidate.changes:
        if change.path in seen:
            problems.append(f"path {change.path} is changed twice")
            continue
        seen.add(change.path)
        path_problem = check_path(tree, change.path)
        if path_problem:
            problems.append(path_problem)
            continue
        on_disk = tree / change.path
        current = (
            on_disk.read_text(encoding="utf-8", errors="replace") if on_disk.is_file() else None
        )
        if on_disk.exists() and not on_disk.is_file():
            problems.append(f"{change.path} is not a regular file")
            continue
        if current != change.before:
            problems.append(f"{change.path} changed since the candidate was made (stale candidate)")
            continue
        if change.after is not None:
            if "\x00" in change.after:
                problems.append(f"{change.path} would contain binary data (NUL bytes)")
                continue
            if len(change.after.encode()) > MAX_FILE_BYTES:
                problems.append(f"{change.path} would be larger than {MAX_FILE_BYTES} bytes")
                continue
            syntax = _syntax_problem(change.path, change.after)
            if syntax:
                problems.append(syntax)
    return problems


def facts_of(
    candidate: Candidate,
    area: str,
    predicted_success: float | None,
    *,
    runner_files: tuple[str, ...] = (),
) -> CandidateFacts:
    """`runner_files`: the repository files the test command runs (oracle.command_files).

    A change for a feature finding is a feature, whatever its generator calls it, and one that
    calls itself a feature is judged as one: a feature may edit test code only to remove the
    xfail mark of the test its finding names (`own`), and the other marks stay."""
    feature = features.CHANGE_TYPE in (candidate.change_type, candidate.finding.change_type)
    own = features.own_xfail(candidate.finding) if feature else None
    writes_tests = coverage.is_test_writing(candidate.finding)
    oracle = tuple(
        reason
        for change in candidate.changes
        for reason in examine(change, runner_files=runner_files, own_xfail=own)
    )
    xfail_removed = tuple(
        f"{change.path}::{test}"
        for change in candidate.changes
        if is_test_path(change.path) or (own is not None and change.path == own[0])
        for test in removed_xfail_marks(change.before, change.after)
    )
    if writes_tests:
        test_edits = tuple(new_test_problems(candidate.changes))
    elif feature:
        test_edits = tuple(feature_test_edits(candidate.changes, own))
    else:
        test_edits = ()
    return CandidateFacts(
        paths=candidate.paths,
        change_type=coverage.CHANGE_TYPE
        if writes_tests
        else features.CHANGE_TYPE
        if feature
        else candidate.change_type,
        area=area,
        generator=candidate.generator,
        finding=candidate.finding.kind,
        lines_changed=candidate.lines_changed,
        stated_risk=candidate.stated_risk,
        predicted_success=predicted_success,
        oracle=oracle,
        xfail_removed=xfail_removed,
        test_edits=test_edits,
    )


def protected_for(target_root: Path, config_files: list[Path]) -> tuple[str, ...]:
    """Repository-relative patterns for overseer's own files that live inside this target."""
    extra: list[str] = []
    root = target_root.resolve()
    for file in config_files:
        resolved = file.resolve()
        if resolved.is_relative_to(root):
            extra.append(str(resolved.relative_to(root)).replace(os.sep, "/"))
    if (root / "src" / "overseer" / "core" / "safety" / "policy.py").is_file():
        extra.extend(SELF_PROTECTED)
    return tuple(extra)
