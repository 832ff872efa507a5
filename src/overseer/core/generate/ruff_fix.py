"""The deterministic generator: ruff's own safe fix for one rule in one file.

ruff reads the file on stdin and prints the fixed source, so nothing is written while
generating. Only fixes ruff calls safe (behaviour-preserving) are applied; `--unsafe-fixes`
is never passed.
"""

from __future__ import annotations

import os
from pathlib import Path

from overseer.core.analyze.findings import Finding
from overseer.core.analyze.lint import ruff_command, ruff_version
from overseer.core.generate.candidate import Candidate, FileChange, GenerationFailed, Risk
from overseer.core.plumbing.sandbox import run_command
from overseer.core.plumbing.secrets import redact

RUFF_FIX_TIMEOUT_SECONDS = 60.0
MAX_SOURCE_BYTES = 2 * 1024 * 1024


class RuffFix:
    name = "ruff_fix"
    label = "ruff_fix"

    def check(self) -> None:
        # Nothing of its own to check: ruff is what the analysis runs too, so without it no
        # finding would reach a generator.
        return None

    def can_handle(self, finding: Finding) -> bool:
        # Only lint findings carry `fixable`: it means ruff reported a safe fix for it.
        return finding.fixable and finding.file is not None

    def generate(self, finding: Finding, tree: Path) -> list[Candidate]:
        if not self.can_handle(finding) or finding.file is None:
            raise GenerationFailed(f"ruff_fix cannot act on {finding.kind}")
        path = tree / finding.file
        if path.is_symlink() or not path.is_file():
            raise GenerationFailed(f"{finding.file} is not a regular file in the worktree")
        if path.stat().st_size > MAX_SOURCE_BYTES:
            raise GenerationFailed(f"{finding.file} is larger than {MAX_SOURCE_BYTES} bytes")
        before = path.read_text(encoding="utf-8")
        result = run_command(
            ruff_command(
                "check",
                "--fix",
                "--no-cache",
                "--quiet",
                "--select",
                finding.kind,
                "--stdin-filename",
                finding.file,
                "-",
            ),
            cwd=tree,
            env={**os.environ, "NO_COLOR": "1"},
            timeout=RUFF_FIX_TIMEOUT_SECONDS,
            stdin_text=before,
            output_limit=MAX_SOURCE_BYTES * 2,
            separate_stderr=True,
            kind="ruff",
            redact_output=False,  # the fixed file itself: redacting it would change the code
        )
        stderr = redact(result.stderr_tail)
        # ruff exits 1 when findings remain after fixing; the fixed source is on stdout anyway.
        if result.timed_out or result.returncode not in (0, 1):
            raise GenerationFailed(f"ruff --fix: {result.describe()}: {stderr[-500:]}")
        after = result.output_tail
        if after == before:
            raise GenerationFailed(f"ruff produced no change for {finding.kind} in {finding.file}")
        name = finding.message.split(":", 1)[0]
        return [
            Candidate(
                generator=self.name,
                finding=finding,
                change_type=finding.change_type,
                stated_risk=Risk.LOW,
                summary=f"fix {finding.kind} ({name}) in {finding.file}",
                impact=f"removes {finding.details.get('safe_fixes', finding.count)} {finding.kind} "
                f"finding(s) in {finding.file}",
                rationale=f"ruff {ruff_version()} has a safe fix for {finding.kind} ({name}): "
                "a fix that ruff guarantees keeps the code's behaviour.",
                changes=[FileChange(finding.file, before, after)],
                provenance={"tool": "ruff", "version": ruff_version(), "rule": finding.kind},
            )
        ]
