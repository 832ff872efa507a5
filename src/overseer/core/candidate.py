"""A candidate change: what a generator proposes, as whole-file before/after texts.

Whatever form a generator works in (ruff's fixed source, a model's search/replace edits), what
reaches SAFETY is the full text of each file before and after, so validation, the diff, the
size and the commit are all computed from the same facts, never from the generator's claims.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from overseer.core.analyze.findings import Finding
from overseer.core.policy import Risk


@dataclass(frozen=True)
class FileChange:
    path: str  # relative to the repository root, '/'-separated
    before: str | None  # None: the file is new
    after: str | None  # None: the file is deleted

    def diff(self) -> str:
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
    provenance: dict[str, Any] = field(default_factory=dict)  # tool versions, prompts, ...

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(c.path for c in self.changes)

    @property
    def target_file(self) -> str | None:
        return self.changes[0].path if self.changes else None

    @property
    def diff(self) -> str:
        return "".join(c.diff() for c in self.changes)

    @property
    def lines_changed(self) -> int:
        return sum(
            1
            for line in self.diff.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        )


class GenerationFailed(Exception):
    """A generator could not produce a usable candidate; the message says why."""
