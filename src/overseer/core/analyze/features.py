"""The `features` area: missing behaviour the repository itself documents, in ways a machine
can check, ranked by how checkable each is.

- `xfail_test`: a test marked `@pytest.mark.xfail(reason=…)` (unconditionally) that xfails at
  the head. The best: it is its own oracle. A change for it must remove that mark — the one test
  edit a feature change may make (safety/oracle.py) — and EVALUATE must see the test pass.
- `not_implemented`: `raise NotImplementedError` in the project's code, in a function a test
  reaches (a test function that imports its module and names it). The tests say what it is for.
- `todo`: a TODO/FIXME comment with a description, next to code, in the project's code. Nothing
  checks it: only a model allowed to write every kind of feature acts on it (`llm.features:
  all`).

Reads only: the files are parsed, never imported or run (the tests already ran, at ANALYZE).
"""

from __future__ import annotations

import ast
import io
import os
import re
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from overseer.base.globs import first_match
from overseer.core.analyze.findings import TEST_PATHS, Finding
from overseer.core.plumbing.testrun import TestReport

AREA = "features"
CHANGE_TYPE = "feature"
XFAIL, NOT_IMPLEMENTED, TODO = "xfail_test", "not_implemented", "todo"
KINDS = (XFAIL, NOT_IMPLEMENTED, TODO)  # best first
CHECKED = (XFAIL, NOT_IMPLEMENTED)  # proven by a test
# What a repository without any of them is told (`--area features`).
NONE_FOUND = (
    "no test marked xfail with a reason, no `raise NotImplementedError` reached by a test, "
    "no TODO/FIXME comment with a description next to code"
)

MAX_FILES = 5000
MAX_FILE_BYTES = 512 * 1024
MAX_TODOS = 50
TODO_MIN_WORDS = 3  # "TODO: fix" says nothing a model could act on
SKIPPED_DIRS = {"node_modules", "venv", "build", "dist", "site-packages", "__pycache__"}
_TODO = re.compile(r"#+\s*(TODO|FIXME)\b(?:\([^)]*\))?[\s:\-–—]*(?P<text>.*)$")


def is_test_file(path: str) -> bool:
    return first_match(TEST_PATHS, path) is not None


# -- the xfail mark --------------------------------------------------------------------------


@dataclass(frozen=True)
class XfailMark:
    """A test's unconditional `@pytest.mark.xfail(reason=…)`, where it is in the source."""

    test: str  # the test function: `test_x`, or `TestY.test_x` for a method
    reason: str
    start: int  # the decorator's first line (1-based)
    end: int  # its last line
    def_line: int  # the line of `def test_x`


def _is_xfail(node: ast.expr) -> bool:
    """`pytest.mark.xfail` or `mark.xfail` (called or not)."""
    func = node.func if isinstance(node, ast.Call) else node
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "xfail"
        and (
            (isinstance(func.value, ast.Attribute) and func.value.attr == "mark")
            or (isinstance(func.value, ast.Name) and func.value.id == "mark")
        )
    )


def _unconditional_reason(node: ast.expr) -> str | None:
    """The reason of an xfail mark that always applies and says why; else None. A positional
    argument is a condition (a string one is evaluated), so such a mark is not one."""
    if not isinstance(node, ast.Call) or node.args:
        return None
    keywords = {kw.arg: kw.value for kw in node.keywords}
    if None in keywords or "condition" in keywords:  # **kwargs: cannot tell
        return None
    reason = keywords.get("reason")
    if isinstance(reason, ast.Constant) and isinstance(reason.value, str) and reason.value.strip():
        return reason.value.strip()
    return None


def _test_functions(tree: ast.Module) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    found = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test"
            ):
                found.append((prefix + node.name, node))
            elif isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")

    visit(tree.body, "")
    return found


def xfail_marks(source: str) -> dict[str, XfailMark] | None:
    """The tests of a module marked xfail unconditionally with a reason, by test; None when the
    source does not parse. A test with more than one xfail mark, or whose mark shares a line
    with other code, is left out: its mark cannot be removed exactly."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    lines = source.splitlines()
    marks: dict[str, XfailMark] = {}
    for name, function in _test_functions(tree):
        xfails = [d for d in function.decorator_list if _is_xfail(d)]
        if len(xfails) != 1:
            continue
        node = xfails[0]
        reason = _unconditional_reason(node)
        end = node.end_lineno or node.lineno
        if reason is None or end >= function.lineno:
            continue
        rest = lines[end - 1][(node.end_col_offset or 0) :].strip()
        if rest and not rest.startswith("#"):
            continue  # more than the mark on its last line
        marks[name] = XfailMark(name, reason, node.lineno, end, function.lineno)
    return marks


def without_xfail_mark(source: str, test: str) -> str | None:
    """`source` with the xfail mark of `test` removed (its decorator's lines, nothing else), or
    None when `test` has no such mark: the one test edit a feature change may make."""
    mark = (xfail_marks(source) or {}).get(test)
    if mark is None:
        return None
    lines = source.splitlines(keepends=True)
    return "".join(lines[: mark.start - 1] + lines[mark.end :])


def removed_xfail_marks(before: str | None, after: str | None) -> list[str]:
    """The tests whose xfail mark a change to a test file removes (a deleted test is not one:
    the oracle guard says that apart)."""
    if before is None:
        return []
    old = xfail_marks(before) or {}
    if after is None:
        return sorted(old)
    new = xfail_marks(after)
    try:
        present = {name for name, _ in _test_functions(ast.parse(after))}
    except (SyntaxError, ValueError):
        return []
    return sorted(name for name in old if name in present and name not in (new or {}))


# -- what a feature finding asks of a change -------------------------------------------------


def _details(finding: Finding | Mapping[str, Any] | None) -> tuple[str | None, dict[str, Any]]:
    if finding is None:
        return None, {}
    if isinstance(finding, Finding):
        return finding.kind, finding.details
    return finding.get("kind"), dict(finding.get("details") or {})


def own_xfail(finding: Finding | Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(test file, test function) whose xfail mark a change for this finding removes."""
    kind, details = _details(finding)
    file = finding.file if isinstance(finding, Finding) else (finding or {}).get("file")
    function = details.get("function")
    if kind != XFAIL or not isinstance(file, str) or not isinstance(function, str):
        return None
    return file, function


def required_tests(finding: Finding | Mapping[str, Any] | None) -> list[str]:
    """The tests (their ids in the test report) a change for this finding must make pass: an
    xfail finding's test, without its mark. Empty for every other finding."""
    kind, details = _details(finding)
    if kind != XFAIL:
        return []
    return [str(t) for t in details.get("tests") or [details.get("test")] if t]


def proof(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the approval view shows of a feature attempt: the test(s) it is for, what they did
    before (xfailed, with the mark's reason) and on the candidate, and whether the change
    removed the mark. None for an attempt that is not about a feature."""
    finding = row.get("finding") or {}
    if finding.get("area") != AREA:
        return None
    kind, details = _details(finding)
    evaluation = row.get("evaluation") or {}
    facts = row.get("policy_facts") or {}
    required = required_tests(finding)
    if kind == XFAIL:
        own = own_xfail(finding)
        removed = facts.get("xfail_removed")
        return {
            "kind": kind,
            "tests": required,
            "before": "xfailed",
            "reason": details.get("reason"),
            "after": {t: (evaluation.get("required") or {}).get(t) for t in required},
            "mark_removed": None
            if removed is None or own is None
            else f"{own[0]}::{own[1]}" in removed,
        }
    return {
        "kind": kind,
        "tests": list(details.get("tests") or []),
        "before": None,
        "reason": details.get("text") or finding.get("message"),
        "after": {},
        "mark_removed": None,
    }


def proof_text(p: Mapping[str, Any]) -> str:
    """One line of `proof`, for `overseer show` and the TUI."""
    tests = ", ".join(p.get("tests") or []) or "-"
    if p.get("kind") != XFAIL:
        return f"{p.get('kind')}: {p.get('reason') or '-'}; tests that reach it: {tests}"
    after = p.get("after") or {}
    outcomes = sorted({str(v) for v in after.values() if v})
    now = (
        "not run yet"
        if not outcomes
        else ("passed now" if outcomes == ["passed"] else f"now {', '.join(outcomes)}")
    )
    removed = p.get("mark_removed")
    mark = (
        "its xfail mark removed by this change"
        if removed
        else "its xfail mark NOT removed"
        if removed is False
        else "mark removal not checked yet"
    )
    return f"{tests}: xfail before ({p.get('reason') or 'no reason'}), {now}; {mark}"


# -- finding them ----------------------------------------------------------------------------


def _read(tree: Path, rel: str) -> str | None:
    """A file of the tree, by a relative path that stays in it (a test report's file names are
    the target's own text), if it is a regular UTF-8 file of a readable size."""
    parts = PurePosixPath(rel).parts
    if not parts or rel.startswith("/") or ".." in parts or "\x00" in rel:
        return None
    path = tree / rel
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def python_files(tree: Path) -> list[str]:
    """The repository's Python files, relative and '/'-separated, hidden and build
    directories left out, symlinks not followed."""
    found: list[str] = []
    for root, dirs, files in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS)
        for name in sorted(files):
            if name.endswith(".py"):
                found.append(os.path.relpath(os.path.join(root, name), tree).replace(os.sep, "/"))
                if len(found) >= MAX_FILES:
                    return found
    return found


def _qualname(test_id: str, file: str) -> str:
    """`tests.test_x.TestY::test_z[1]` in tests/test_x.py → `TestY.test_z`."""
    classname, _, name = test_id.rpartition("::")
    module = file.removesuffix(".py").replace("/", ".")
    classes = classname[len(module) + 1 :] if classname.startswith(module + ".") else ""
    if not classes and classname != module:  # a rootdir that names modules differently
        parts = classname.split(".")
        kept: list[str] = []
        while parts and parts[-1][:1].isupper():
            kept.insert(0, parts.pop())
        classes = ".".join(kept)
    base = name.split("[", 1)[0]
    return f"{classes}.{base}" if classes else base


def xfail_findings(tests: TestReport, tree: Path) -> list[Finding]:
    """Tests that xfailed at the head, by an unconditional mark with a reason."""
    groups: dict[tuple[str, str], list[str]] = {}
    for test_id, case in sorted(tests.cases.items()):
        if case.outcome == "xfailed" and case.file and case.file.endswith(".py"):
            groups.setdefault((case.file, _qualname(test_id, case.file)), []).append(test_id)
    findings = []
    marks_of: dict[str, dict[str, XfailMark]] = {}
    for (file, function), ids in sorted(groups.items()):
        if file not in marks_of:
            source = _read(tree, file)
            marks_of[file] = (xfail_marks(source) or {}) if source is not None else {}
        mark = marks_of[file].get(function)
        if mark is None:
            continue  # xfailed at run time, by a condition or a parameter: no mark to remove
        shown = ids[0] + (f" (and {len(ids) - 1} more parameters)" if len(ids) > 1 else "")
        findings.append(
            Finding(
                kind=XFAIL,
                area=AREA,
                change_type=CHANGE_TYPE,
                file=file,
                message=f"{shown} is marked xfail: {mark.reason}",
                details={
                    "test": ids[0],
                    "tests": ids,
                    "function": function,
                    "reason": mark.reason,
                    "rows": [mark.start],
                    "subject": function,
                },
            )
        )
    return findings


def _module_names(rel: str) -> list[str]:
    """The names a module may be imported by: pkg.mod for pkg/mod.py and src/pkg/mod.py."""
    stem = rel.removesuffix(".py").removesuffix("/__init__")
    names = [stem.replace("/", ".")]
    if stem.startswith("src/"):
        names.insert(0, stem[4:].replace("/", "."))
    return names


def _imports(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _names_used(node: ast.AST) -> set[str]:
    used: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            used.add(child.id)
        elif isinstance(child, ast.Attribute):
            used.add(child.attr)
    return used


def _raises_not_implemented(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int | None:
    """The line of a `raise NotImplementedError` in the function's own body (not in a
    function nested in it)."""
    todo: list[ast.AST] = list(function.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                return node.lineno
        todo.extend(ast.iter_child_nodes(node))
    return None


def _abstract(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(
        (d.id if isinstance(d, ast.Name) else d.attr if isinstance(d, ast.Attribute) else "")
        in ("abstractmethod", "overload")
        for d in function.decorator_list
    )


def _unimplemented(tree: ast.Module) -> list[tuple[str, str, int]]:
    """(qualified name, name, line of the raise) of the functions that raise
    NotImplementedError. A method that another class of the module defines too is the
    base-class idiom ("subclasses implement this"), not a missing feature."""
    methods: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    methods[item.name] = methods.get(item.name, 0) + 1
    found = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                line = _raises_not_implemented(node)
                overridden = bool(prefix) and methods.get(node.name, 0) > 1
                if line is not None and not _abstract(node) and not overridden:
                    found.append((prefix + node.name, node.name, line))
            elif isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")

    visit(tree.body, "")
    return found


def not_implemented_findings(
    tree: Path, files: list[str], covered: frozenset[str] = frozenset()
) -> list[Finding]:
    """`raise NotImplementedError` in the project's code, in functions a test reaches. One
    that a test in `covered` (test file::function: the xfail findings') reaches is left to
    that finding: the same missing behaviour, documented by a test that proves it, whose mark
    a change for it removes."""
    tests: list[tuple[str, set[str], list[tuple[str, set[str]]]]] = []  # file, imports, tests
    for rel in files:
        if not is_test_file(rel):
            continue
        source = _read(tree, rel)
        try:
            parsed = ast.parse(source or "")
        except (SyntaxError, ValueError):
            continue
        functions = [(name, _names_used(node)) for name, node in _test_functions(parsed)]
        if functions:
            tests.append((rel, _imports(parsed), functions))
    findings = []
    for rel in files:
        if is_test_file(rel):
            continue
        source = _read(tree, rel)
        if source is None or "NotImplementedError" not in source:
            continue
        try:
            parsed = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        modules = _module_names(rel)
        for qualified, name, line in _unimplemented(parsed):
            reached = [
                f"{test_file}::{test}"
                for test_file, imported, functions in tests
                if any(
                    i == m or m.startswith(i + ".") or i.startswith(m + ".")
                    for i in imported
                    for m in modules
                )
                for test, used in functions
                if name in used
            ]
            if not reached or covered.intersection(reached):
                continue
            findings.append(
                Finding(
                    kind=NOT_IMPLEMENTED,
                    area=AREA,
                    change_type=CHANGE_TYPE,
                    file=rel,
                    message=f"{qualified} raises NotImplementedError; "
                    f"{len(reached)} test(s) reach it: {', '.join(reached[:3])}"
                    + (" …" if len(reached) > 3 else ""),
                    details={
                        "function": qualified,
                        "rows": [line],
                        "tests": reached,
                        "test_files": sorted({t.split("::", 1)[0] for t in reached}),
                        "subject": qualified,
                    },
                )
            )
    return findings


def _is_code(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def todo_findings(tree: Path, files: list[str]) -> list[Finding]:
    """TODO/FIXME comments with a description (TODO_MIN_WORDS words at least) next to code:
    on a line of code, or right above or below one. The project's code only."""
    findings: list[Finding] = []
    for rel in files:
        if is_test_file(rel):
            continue
        source = _read(tree, rel)
        if source is None or ("TODO" not in source and "FIXME" not in source):
            continue
        lines = source.splitlines()
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
        except (tokenize.TokenError, SyntaxError, ValueError):
            continue
        for token in tokens:
            if token.type != tokenize.COMMENT:
                continue
            match = _TODO.match(token.string)
            if match is None:
                continue
            text = match["text"].strip()
            if len(text.split()) < TODO_MIN_WORDS:
                continue
            row = token.start[0]
            inline = bool(token.line[: token.start[1]].strip())
            nearby = [lines[n - 1] for n in (row - 1, row + 1) if 1 <= n <= len(lines)]
            # A comment block: look past the comment lines right below it.
            below = row
            while below < len(lines) and lines[below].strip().startswith("#"):
                below += 1
            if below < len(lines):
                nearby.append(lines[below])
            if not inline and not any(_is_code(line) for line in nearby):
                continue
            findings.append(
                Finding(
                    kind=TODO,
                    area=AREA,
                    change_type=CHANGE_TYPE,
                    file=rel,
                    message=f"{match[1]} at line {row}: {text}",
                    details={"rows": [row], "text": text, "subject": f"{match[1]}: {text}"},
                )
            )
            if len(findings) >= MAX_TODOS:
                return findings
    return findings


def feature_findings(tests: TestReport, tree: Path) -> list[Finding]:
    """Every feature finding at the tree's commit; `tests` is the test run there."""
    files = python_files(tree)
    xfails = xfail_findings(tests, tree)
    covered = frozenset(f"{f.file}::{f.details['function']}" for f in xfails)
    return xfails + not_implemented_findings(tree, files, covered) + todo_findings(tree, files)
