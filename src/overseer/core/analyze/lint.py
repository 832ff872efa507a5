"""ruff as an analyzer: findings by rule and file, and whether ruff can fix them safely.

overseer runs its own pinned ruff (`python -m ruff` from overseer's environment) with an
explicit `--select`, so the findings do not change when ruff's defaults do. The target's own
ruff settings (line length, excludes, target version) still apply. `--no-cache` keeps ruff
from writing a cache into the tree.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overseer.core.analyze.findings import Finding
from overseer.core.plumbing.sandbox import run_command

RUFF_TIMEOUT_SECONDS = 300.0
RUFF_OUTPUT_LIMIT = 256 * 1024 * 1024
# Rule families whose fixes are about speed rather than tidiness.
PERFORMANCE_PREFIXES = ("PERF",)


def ruff_command(*args: str) -> list[str]:
    return [*_ruff(), *args]


@functools.cache
def _ruff() -> tuple[str, ...]:
    # The ruff binary itself: `python -m ruff` would start an interpreter only to exec it,
    # ~45 ms per call on this machine (bench/cycle_overhead.py).
    try:
        from ruff.__main__ import find_ruff_bin

        return (str(find_ruff_bin()),)
    except (ImportError, FileNotFoundError):
        return (sys.executable, "-m", "ruff")


def ruff_version() -> str:
    from importlib.metadata import version

    return version("ruff")


@dataclass
class LintReport:
    ok: bool
    error: str | None = None
    total: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "error": self.error,
            "total": self.total,
            "by_rule": self.by_rule,
            "groups": self.groups,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LintReport:
        return cls(**data)


def lint_key(select: list[str]) -> str:
    return f"ruff:{ruff_version()}:{','.join(sorted(select))}"


def run_ruff(tree: Path, select: list[str]) -> LintReport:
    """Lint the tree; group the findings by (rule, file)."""
    result = run_command(
        ruff_command(
            "check",
            "--output-format=json",
            "--no-cache",
            "--exit-zero",
            "--select",
            ",".join(select),
            ".",
        ),
        cwd=tree,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=RUFF_TIMEOUT_SECONDS,
        output_limit=RUFF_OUTPUT_LIMIT,
        separate_stderr=True,
        kind="ruff",
    )
    if not result.ok:
        return LintReport(ok=False, error=f"{result.describe()}: {result.stderr_tail[-1000:]}")
    text = result.output_tail
    try:
        items = json.loads(text) if text.strip() else []
    except ValueError:
        return LintReport(ok=False, error=f"ruff's JSON output could not be read: {text[:300]}")
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    by_rule: dict[str, int] = defaultdict(int)
    root = str(tree.resolve())
    for item in items:
        code = item.get("code") or "syntax-error"
        filename = os.path.relpath(item.get("filename", ""), root)
        by_rule[code] += 1
        group = groups.setdefault(
            (code, filename),
            {
                "code": code,
                "file": filename,
                "name": item.get("name") or code,
                "message": item.get("message", ""),
                "url": item.get("url"),
                "count": 0,
                "safe_fixes": 0,
                "rows": [],
            },
        )
        group["count"] += 1
        fix = item.get("fix")
        if fix and fix.get("applicability") == "safe":
            group["safe_fixes"] += 1
        row = (item.get("location") or {}).get("row")
        if row is not None and len(group["rows"]) < 20:
            group["rows"].append(row)
    return LintReport(
        ok=True,
        total=len(items),
        by_rule=dict(sorted(by_rule.items())),
        groups=list(groups.values()),
    )


def lint_findings(report: LintReport) -> list[Finding]:
    findings = []
    for g in report.groups:
        performance = g["code"].startswith(PERFORMANCE_PREFIXES)
        findings.append(
            Finding(
                kind=g["code"],
                area="performance" if performance else "quality",
                change_type="optimization" if performance else "quality",
                file=g["file"],
                message=f"{g['name']}: {g['message']}",
                count=g["count"],
                fixable=g["safe_fixes"] > 0,
                details={"rows": g["rows"], "url": g["url"], "safe_fixes": g["safe_fixes"]},
            )
        )
    return findings
