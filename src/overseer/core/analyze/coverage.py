"""The `uncovered_code` finding: the project's modules (and their functions) with lines that no
test runs, found by running the suite once under coverage.py.

The run is the target's own test command with the `overseer_coverage` pytest plugin loaded
(plumbing/pytest_plugin), so it needs coverage.py importable by the interpreter that runs the
tests; when it is not, ANALYZE says so and finds nothing of this kind. Only with
`new_tests.enabled` (a target setting): it costs a second test run per analysed commit, cached
like the other baselines.

A model acts on such a finding by writing a *new* test file (never by editing an existing test:
SAFETY denies it, safety/oracle.py `new_test_problems`), kept only if it proves itself
(evaluate/proving.py): it collects, passes `reliability_runs` times in a row, runs lines of the
module that no test ran before, and asserts something.
"""

from __future__ import annotations

import ast
import json
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from overseer.core.analyze.features import is_test_file
from overseer.core.analyze.findings import Finding
from overseer.core.plumbing.bus import PhaseReport
from overseer.core.plumbing.target import Target
from overseer.core.plumbing.testrun import TestReport, resolve_test_command, run_tests
from overseer.core.record.history import History

KIND = "uncovered_code"
AREA = "quality"
CHANGE_TYPE = "test"
KEY = "coverage:1"  # bumped when what is measured changes
MAX_FUNCTIONS = 10  # named in a finding


@dataclass
class Coverage:
    """What a test run under coverage.py ran: per file, its statements and those never run."""

    files: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    error: str | None = None

    def missing(self, path: str) -> set[int] | None:
        data = self.files.get(path)
        return set(data["missing"]) if data is not None else None


def read_coverage(path: Path) -> Coverage:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Coverage(error="the test run wrote no coverage report (is the test command pytest?)")
    return Coverage(files=data.get("files") or {}, error=data.get("error"))


def run_with_coverage(
    target: Target,
    tree: Path,
    *,
    cancel: threading.Event | None = None,
    only: list[str] | None = None,
) -> tuple[TestReport, Coverage]:
    """The target's tests (or `only` these) run once in `tree` under coverage.py."""
    with tempfile.TemporaryDirectory(prefix="overseer-coverage-") as scratch:
        out = Path(scratch) / "coverage.json"
        tests = run_tests(
            target.config,
            target.root,
            tree,
            cancel=cancel,
            rerun_failures=False,
            only=only,
            coverage_file=out,
        )
        return tests, read_coverage(out)


def is_project_module(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return (
        path.endswith(".py")
        and not is_test_file(path)
        and not any(p.startswith(".") or p in ("venv", "site-packages", "build") for p in parts)
    )


def functions_missing(source: str, missing: set[int]) -> dict[str, list[int]]:
    """Each function (`Class.method` for methods) with lines that never ran, and those lines;
    a line is the innermost function's."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    spans: list[tuple[int, int, str]] = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                spans.append((node.lineno, node.end_lineno or node.lineno, prefix + node.name))
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")

    visit(tree.body, "")
    found: dict[str, list[int]] = {}
    for line in sorted(missing):
        inside = [s for s in spans if s[0] <= line <= s[1]]
        if inside:
            name = max(inside, key=lambda s: s[0])[2]
            found.setdefault(name, []).append(line)
    return found


def new_test_path(tree: Path, module: str) -> str:
    """Where a new test for `module` goes: next to the project's tests, a name no file has."""
    stem = PurePosixPath(module).stem
    if stem == "__init__":
        stem = PurePosixPath(module).parent.name or "package"
    folder = next((d for d in ("tests", "test") if (tree / d).is_dir()), "tests")
    for n in range(1, 100):
        name = f"{folder}/test_{stem}_coverage{'' if n == 1 else f'_{n}'}.py"
        if not (tree / name).exists():
            return name
    return f"{folder}/test_{stem}_coverage_new.py"


def uncovered_findings(coverage: Coverage, tree: Path, limit: int) -> list[Finding]:
    """A finding per project module with lines no test runs, the most uncovered first."""
    found = []
    for path, data in coverage.files.items():
        missing = sorted(data.get("missing") or [])
        statements = data.get("statements") or []
        if not missing or not statements or not is_project_module(path):
            continue
        try:
            source = (tree / path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        functions = functions_missing(source, set(missing))
        percent = round(100 * (1 - len(missing) / len(statements)), 1)
        message = (
            f"{path}: {len(missing)} of {len(statements)} lines are run by no test "
            f"({percent:g} % covered)"
        )
        if functions:
            names = list(functions)[:MAX_FUNCTIONS]
            message += f"; in {', '.join(names)}" + (" …" if len(functions) > len(names) else "")
        found.append(
            Finding(
                kind=KIND,
                area=AREA,
                change_type=CHANGE_TYPE,
                file=path,
                message=message,
                count=len(missing),
                details={
                    "missing": missing,
                    "statements": len(statements),
                    "covered_percent": percent,
                    "functions": functions,
                    "new_test": new_test_path(tree, path),
                    "rows": missing[:10],
                },
            )
        )
    found.sort(key=lambda f: (-f.count, f.file or ""))
    return found[:limit]


def coverage_findings(
    target: Target,
    commit: str,
    *,
    history: History,
    tree: Callable[[], Path],
    report: PhaseReport,
    cancel: threading.Event | None = None,
) -> list[Finding]:
    """The `uncovered_code` findings at `commit`: from the cache, or measured once."""
    key = f"{KEY}:{resolve_test_command(target.config, target.root).key}"
    cached = history.get_baseline(target.key, commit, key)
    if cached is not None:
        return [Finding.from_dict(f) for f in cached["findings"]]
    report.progress("running the tests under coverage.py")
    tests, coverage = run_with_coverage(target, tree(), cancel=cancel)
    if coverage.error or tests.timed_out:
        why = coverage.error or tests.describe()
        report.progress(f"no coverage: {why}")
        return []  # not cached: installing coverage.py should not need a new commit
    found = uncovered_findings(coverage, tree(), target.config.new_tests.max_findings)
    history.put_baseline(target.key, commit, key, {"findings": [f.to_dict() for f in found]})
    return found


def is_test_writing(finding: Finding | dict[str, Any] | None) -> bool:
    kind = finding.get("kind") if isinstance(finding, dict) else getattr(finding, "kind", None)
    return kind == KIND
