"""GENERATE: turn one ranked finding into a candidate change.

Generators share one small interface so new ones (a local model, an HTTP model) plug in next
to the deterministic `ruff_fix`. A generator reads the code from the worktree it is given and
returns a Candidate; it never writes files. SAFETY decides what happens to the candidate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from overseer.core.analyze.findings import Finding
from overseer.core.candidate import Candidate, GenerationFailed
from overseer.core.history import History
from overseer.core.secrets import Redactor


class Generator(Protocol):
    name: str

    def can_handle(self, finding: Finding) -> bool: ...

    def generate(self, finding: Finding, tree: Path) -> list[Candidate]:
        """One or more candidates (N-best) for the finding; GenerationFailed says why not."""
        ...


def build_generators(
    configured: list[Any],
    *,
    history: History | None = None,
    secret_files: tuple[str, ...] = (),
    redactor: Redactor | None = None,
) -> tuple[list[Generator], list[str]]:
    """The configured generators that can work now, and why the others cannot.

    A generator whose model file is missing or whose endpoint does not answer is left out with
    a reason, so the others (the ruff fixer) keep working.
    """
    from overseer.core.generate.ruff_fix import RuffFix

    generators: list[Generator] = []
    problems: list[str] = []
    for entry in configured:
        if entry == "ruff_fix":
            generators.append(RuffFix())
            continue
        from overseer.core.generate.llm import LLMGenerator
        from overseer.core.llm import BackendError

        generator = LLMGenerator(entry.llm, history, secret_files=secret_files, redactor=redactor)
        try:
            generator.backend.check()
        except BackendError as exc:
            problems.append(f"generator llm ({entry.llm.backend}) is off: {exc}")
            continue
        generators.append(generator)
    return generators, problems


__all__ = ["Candidate", "GenerationFailed", "Generator", "build_generators"]
