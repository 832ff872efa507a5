"""A candidate change: what a generator proposes, as whole-file before/after texts.

Whatever form a generator works in (ruff's fixed source, a model's search/replace edits), what
reaches SAFETY is the full text of each file before and after, so validation, the diff, the
size and the commit are all computed from the same facts, never from the generator's claims.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from overseer.base.globs import first_match
from overseer.core.analyze.findings import Finding


class Risk(StrEnum):
    """The risk of a change: stated by its generator, raised by the policy (safety/policy.py),
    never lowered. It lives with the candidate, which states it, so that generating needs
    nothing from SAFETY."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _RISK_RANK[self]


_RISK_RANK = {Risk.LOW: 0, Risk.MEDIUM: 1, Risk.HIGH: 2}


@dataclass(frozen=True)
class FileChange:
    path: str  # relative to the repository root, '/'-separated
    before: str | None  # None: the file is new
    after: str | None  # None: the file is deleted

    def diff(self) -> str:
        return self._diff

    @cached_property
    def _diff(self) -> str:
        # Computed once: SAFETY alone asks for it five times (the size, the ranking, the
        # prediction, the policy's facts, the record), and difflib takes ~6 ms on a 2,000-line
        # file (pyflakes' checker.py). The texts cannot change: the dataclass is frozen.
        a = (self.before or "").splitlines(keepends=True)
        b = (self.after or "").splitlines(keepends=True)
        lines = difflib.unified_diff(
            a,
            b,
            fromfile="/dev/null" if self.before is None else f"a/{self.path}",
            tofile="/dev/null" if self.after is None else f"b/{self.path}",
        )
        out = []
        for line in lines:
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
        return "".join(out)


@dataclass(frozen=True)
class Edit:
    """Replace the one occurrence of `search` in `path` by `replace` (a model's way to edit)."""

    path: str
    search: str
    replace: str


class EditRejected(Exception):
    """An edit that cannot be applied exactly: its search text is missing or ambiguous."""


def apply_edits(path: str, text: str, edits: list[Edit]) -> str:
    """Apply edits in order, strictly: each search text must occur exactly once at that point.

    Forgiving about where an edit's text came from, never about where it lands: an edit that
    matches twice could change the wrong place, so it is refused rather than guessed.
    """
    for number, edit in enumerate(edits, 1):
        if not edit.search:
            raise EditRejected(f"edit {number} on {path} has an empty search text")
        count = text.count(edit.search)
        if count == 0:
            raise EditRejected(
                f"edit {number} on {path}: its search text does not occur in the file"
            )
        if count > 1:
            raise EditRejected(
                f"edit {number} on {path}: its search text occurs {count} times; it must be unique"
            )
        text = text.replace(edit.search, edit.replace, 1)
    return text


@dataclass
class Candidate:
    generator: str
    finding: Finding
    change_type: str
    stated_risk: Risk
    summary: str  # one line, for the commit subject
    impact: str
    rationale: str
    changes: list[FileChange] = field(default_factory=list)
    # Edits not applied yet (a model's search/replace); SAFETY turns them into changes, after
    # checking every path, or rejects the candidate.
    edits: list[Edit] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)  # tool versions, prompts, ...

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(c.path for c in self.changes) or tuple(
            dict.fromkeys(e.path for e in self.edits)
        )

    @property
    def target_file(self) -> str | None:
        # Before SAFETY applies a model's edits there are no changes yet, only edits' paths.
        paths = self.paths
        return paths[0] if paths else None

    @property
    def diff(self) -> str:
        return "".join(c.diff() for c in self.changes)

    def recorded_diff(self, secret_files: list[str] | tuple[str, ...]) -> str:
        """The diff as the history, events and screens may show it: the change to a file that
        matches `secrets.files` is named, its lines are not (its context lines are the
        secret). Such a change is denied anyway, as a protected path."""
        out = []
        for change in self.changes:
            pattern = first_match(secret_files, change.path)
            if pattern is None:
                out.append(change.diff())
            else:
                out.append(
                    f"--- a/{change.path}\n+++ b/{change.path}\n"
                    f"[the change to {change.path} is not shown: it matches secrets.files "
                    f"{pattern!r}]\n"
                )
        return "".join(out)

    @property
    def lines_changed(self) -> int:
        return sum(
            1
            for line in self.diff.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        )


class GenerationFailed(Exception):
    """A generator could not produce a usable candidate for this finding; the message says why,
    and `provenance` keeps what it tried (a prompt, a model's raw reply) for the record."""

    def __init__(self, message: str, provenance: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.provenance = provenance or {}


class GeneratorFault(GenerationFailed):
    """The generator itself cannot work now — its model does not load, its endpoint does not
    answer, it ran out of its time limit — whatever the finding. Not held against the finding:
    the next generator able to act on it is tried instead, and this one rests until its check
    passes again. (A reply that cannot be used, or a prompt too long for the model, is about
    the finding: a plain GenerationFailed.)"""


class UnusableReplies(GenerationFailed):
    """The model answered, but no reply could be used (not JSON, no edits, …): a failure the
    model may repair when shown its reasons (generate/repair.py)."""


class RoundNotSent(GenerationFailed):
    """A round was not sent to the model: it could go beyond the attempt's token budget."""
