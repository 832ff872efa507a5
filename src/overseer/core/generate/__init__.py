"""GENERATE: turn one ranked finding into a candidate change.

Generators share one small interface so new ones (a local model, an HTTP model) plug in next
to the deterministic `ruff_fix`. A generator reads the code from the worktree it is given and
returns a Candidate; it never writes files. SAFETY decides what happens to the candidate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from overseer.core.analyze.findings import Finding
from overseer.core.candidate import Candidate, GenerationFailed


class Generator(Protocol):
    name: str

    def can_handle(self, finding: Finding) -> bool: ...

    def generate(self, finding: Finding, tree: Path) -> Candidate: ...


def build_generators(names: list[str]) -> list[Generator]:
    from overseer.core.generate.ruff_fix import RuffFix

    available = {"ruff_fix": RuffFix}
    return [available[name]() for name in names]


__all__ = ["Candidate", "GenerationFailed", "Generator", "build_generators"]
