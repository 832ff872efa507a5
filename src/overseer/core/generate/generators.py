"""GENERATE: turn one ranked finding into a candidate change.

Generators share one small interface so new ones (a local model, an HTTP model) plug in next
to the deterministic `ruff_fix`. A generator reads the code from the worktree it is given and
returns a Candidate; it never writes files. SAFETY decides what happens to the candidate.
Whether a generator may be used at all is kept per generator by the health board (health.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from overseer.core.analyze.findings import Finding
from overseer.core.generate.candidate import Candidate
from overseer.core.plumbing.secrets import Redactor
from overseer.core.record.history import History


class Generator(Protocol):
    # Read-only, so that a generator may make them properties.
    @property
    def name(self) -> str:
        """What the history records."""
        ...

    @property
    def label(self) -> str:
        """For people, telling two generators of the same name apart."""
        ...

    def check(self) -> None:
        """Whether it can work now (its model file is sane, its endpoint answers); raises
        GeneratorFault saying why not. Cheap: it runs at start-up and while it is off."""
        ...

    def can_handle(self, finding: Finding) -> bool: ...

    def generate(self, finding: Finding, tree: Path) -> list[Candidate]:
        """One or more candidates (N-best) for the finding; GenerationFailed says why not, and
        GeneratorFault that the generator itself cannot work now, whatever the finding."""
        ...


def build_generators(
    configured: list[Any],
    *,
    history: History | None = None,
    secret_files: tuple[str, ...] = (),
    redactor: Redactor | None = None,
) -> list[Generator]:
    """The configured generators, in order, unchecked: which of them may work is the health
    board's to say (health.py), at start-up and after any failure of their own."""
    from overseer.core.generate.ruff_fix import RuffFix

    generators: list[Generator] = []
    for entry in configured:
        if entry == "ruff_fix":
            generators.append(RuffFix())
            continue
        from overseer.core.generate.model import LLMGenerator

        generators.append(
            LLMGenerator(entry.llm, history, secret_files=secret_files, redactor=redactor)
        )
    return generators
