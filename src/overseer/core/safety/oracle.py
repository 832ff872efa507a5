"""The oracle-integrity guard: a change must not make the tests easier to pass.

Tests are the oracle that decides whether a change is kept. A change that weakens that oracle
would pass more easily without being better, so the policy never lets it promote itself: it
waits for a human at every autonomy level (or is denied, where the policy says so).

What counts as weakening is measured from the files' syntax trees (and configuration) before
and after, never from the generator's description. Each kind is one small check below, run in
order by `examine`; each returns its reasons:

- assertions removed, or a comparison weakened to a plain truth test (an assertion that cannot
  fail, `assert x == x`, or cannot run, under `if False:`, does not count);
- skip/xfail marks added (decorators, `pytest.skip()`, `raise SkipTest`);
- a numeric tolerance loosened;
- a test deleted, or its body reduced to nothing (`pass`, `...`, a docstring);
- which tests are collected or selected: pytest hooks and `collect_ignore` in conftest files,
  the pytest section of any configuration file, a file the test command itself runs;
- an xfail mark removed: only a feature change for that very test may remove it (its test
  must then pass in EVALUATE), never a change by itself.

A feature change (`feature_test_edits`) may edit test code in that one way only — removing the
xfail mark of the test its finding names — and a feature for an xfail test must do so.

A change that writes new tests (`new_test_problems`, for an `uncovered_code` finding) may only
add new test files, each of whose tests asserts something: it edits no existing file at all.
"""

from __future__ import annotations

import ast
import configparser
import os
import shlex
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from overseer.base.globs import first_match
from overseer.core.analyze.features import removed_xfail_marks, without_xfail_mark
from overseer.core.analyze.findings import TEST_PATHS
from overseer.core.generate.candidate import FileChange

SKIP_NAMES = {
    "skip",
    "skipif",
    "xfail",
    "skipIf",
    "skipUnless",
    "expectedFailure",
    "importorskip",
    "SkipTest",
}
# Tolerances: bigger is looser for these keywords; smaller is looser for places/decimal.
LOOSER_WHEN_BIGGER = {
    "rel",
    "abs",
    "rtol",
    "atol",
    "rel_tol",
    "abs_tol",
    "tol",
    "tolerance",
    "delta",
    "epsilon",
}
LOOSER_WHEN_SMALLER = {"places", "decimal", "significant"}


def is_test_path(path: str) -> bool:
    return first_match(TEST_PATHS, path) is not None


@dataclass
class Oracle:
    """What a piece of test code checks, roughly counted."""

    assertions: int = 0  # assert statements, assert* calls, pytest.raises/warns
    comparisons: int = 0  # assert statements that compare something
    skips: int = 0
    tolerances: list[tuple[str, str, float]] = field(default_factory=list)  # (call, keyword, value)
    # Each test function (`Class.test_x` for methods) → whether its body does anything.
    tests: dict[str, bool] = field(default_factory=dict)
    # pytest hooks and collection settings of a conftest: name → its code, to compare.
    collection: dict[str, str] = field(default_factory=dict)


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def measure(source: str) -> Oracle | None:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):  # ValueError: NUL bytes in the source
        return None
    oracle = Oracle()
    for node in _reachable(tree):
        if isinstance(node, ast.Assert):
            if _cannot_fail(node.test):
                continue
            oracle.assertions += 1
            if isinstance(node.test, ast.Compare):
                oracle.comparisons += 1
        elif isinstance(node, ast.Call):
            name = _name(node.func)
            if name.startswith("assert") or name in ("raises", "warns", "fail"):
                oracle.assertions += 1
            for kw in node.keywords:
                value = kw.value
                if (
                    kw.arg in LOOSER_WHEN_BIGGER | LOOSER_WHEN_SMALLER
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, int | float)
                    and not isinstance(value.value, bool)
                ):
                    oracle.tolerances.append((name, kw.arg, float(value.value)))
        elif isinstance(node, ast.Attribute | ast.Name) and _name(node) in SKIP_NAMES:
            # Each use of a mark names it once, called or not: `skipif(...)`, `@pytest.mark.xfail`,
            # `pytest.skip("…")`, `@unittest.expectedFailure`, `raise unittest.SkipTest`.
            oracle.skips += 1
    oracle.tests = _tests(tree)
    oracle.collection = _collection(tree)
    return oracle


def _tests(tree: ast.Module) -> dict[str, bool]:
    """The test functions pytest and unittest would collect, and whether each does anything."""
    found: dict[str, bool] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test"
            ):
                found[prefix + node.name] = not _does_nothing(node.body)
            elif isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")

    visit(tree.body, "")
    return found


def _does_nothing(body: list[ast.stmt]) -> bool:
    """`pass`, `...`, a docstring, a bare `return`: a test that checks nothing at all."""
    for statement in body:
        if isinstance(statement, ast.Pass):
            continue
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue
        if isinstance(statement, ast.Return) and (
            statement.value is None
            or (isinstance(statement.value, ast.Constant) and statement.value.value is None)
        ):
            continue
        return False
    return True


# Module-level names of a conftest that decide what is collected and how it runs.
COLLECTION_NAMES = ("collect_ignore", "collect_ignore_glob", "pytest_plugins", "pytestmark")


def _collection(tree: ast.Module) -> dict[str, str]:
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "pytest_"
        ):
            found[node.name] = ast.dump(node)
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id in COLLECTION_NAMES:
                    found[target.id] = found.get(target.id, "") + ast.dump(node)
    return found


def _reachable(tree: ast.AST) -> list[ast.AST]:
    """Every node, except those under `if False:`/`if 0:`/`while False:` (never run)."""
    found: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        found.append(node)
        if isinstance(node, ast.If | ast.While) and _constant_false(node.test):
            todo.extend(node.orelse if isinstance(node, ast.If) else [])
            todo.append(node.test)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return found


def _constant_false(test: ast.expr) -> bool:
    return isinstance(test, ast.Constant) and not test.value


def _cannot_fail(test: ast.expr) -> bool:
    """`assert True`, `assert 1`, `assert x == x`: true whatever the code does."""
    if isinstance(test, ast.Constant):
        return bool(test.value)
    if (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Eq | ast.Is | ast.GtE | ast.LtE)
    ):
        return ast.dump(test.left) == ast.dump(test.comparators[0])
    return False


# --- the checks: each takes a change with both sides measured, returns its reasons ----------


@dataclass(frozen=True)
class Sides:
    """A change to test code, measured before and after (`after` None: the file is deleted)."""

    path: str
    before: Oracle
    after: Oracle | None


def assertions_removed(s: Sides) -> list[str]:
    if s.after is None:
        return [f"deletes the test file {s.path} ({s.before.assertions} assertion(s))"]
    if s.after.assertions < s.before.assertions:
        return [f"removes {s.before.assertions - s.after.assertions} assertion(s) from {s.path}"]
    if s.after.comparisons < s.before.comparisons:
        return [
            f"weakens {s.before.comparisons - s.after.comparisons} assertion(s) in {s.path} "
            "(a comparison became a plain truth test)"
        ]
    return []


def skips_added(s: Sides) -> list[str]:
    if s.after is not None and s.after.skips > s.before.skips:
        return [f"adds {s.after.skips - s.before.skips} skip/xfail mark(s) to {s.path}"]
    return []


def tolerance_loosened(s: Sides) -> list[str]:
    if s.after is None:
        return []
    loosened = _loosened(s.before.tolerances, s.after.tolerances)
    return [f"loosens a tolerance in {s.path}: {loosened}"] if loosened else []


def tests_lost(s: Sides) -> list[str]:
    if s.after is None:
        return []  # said by assertions_removed
    after = s.after.tests
    deleted = [name for name in s.before.tests if name not in after]
    emptied = [name for name, did in s.before.tests.items() if did and after.get(name) is False]
    reasons = []
    if deleted:
        reasons.append(f"deletes {len(deleted)} test(s) from {s.path}: {_names(deleted)}")
    if emptied:
        reasons.append(
            f"empties {len(emptied)} test(s) in {s.path} (the body does nothing): {_names(emptied)}"
        )
    return reasons


def collection_changed(s: Sides) -> list[str]:
    after = s.after.collection if s.after is not None else {}
    changed = sorted(
        name
        for name in set(s.before.collection) | set(after)
        if s.before.collection.get(name) != after.get(name)
    )
    if not changed:
        return []
    return [f"changes which tests run: {', '.join(changed)} in {s.path}"]


TEST_CODE_CHECKS: tuple[Callable[[Sides], list[str]], ...] = (
    assertions_removed,
    skips_added,
    tolerance_loosened,
    tests_lost,
    collection_changed,
)


def _names(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


# --- configuration that decides which tests run ----------------------------------------------

# Where pytest reads its options from, and the section it reads in each.
PYTEST_SECTIONS = {
    "pytest.ini": ("ini", "pytest"),
    "tox.ini": ("ini", "pytest"),
    "setup.cfg": ("ini", "tool:pytest"),
    "pyproject.toml": ("toml", "tool.pytest"),
}


def _pytest_section(name: str, text: str | None) -> dict[str, object] | str | None:
    """The pytest options of a configuration file, by name; the raw text when it does not
    parse (validation rejects such a change on its own)."""
    if text is None:
        return None
    kind, section = PYTEST_SECTIONS[name]
    try:
        if kind == "toml":
            data: object = tomllib.loads(text)
            for key in section.split("."):
                data = data.get(key) if isinstance(data, dict) else None
            if not isinstance(data, dict):
                return None
            # [tool.pytest.ini_options] holds the options; [tool.pytest] may hold more.
            options = {k: v for k, v in data.items() if k != "ini_options"}
            ini = data.get("ini_options")
            return {**options, **(ini if isinstance(ini, dict) else {})}
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(text)
        return dict(parser[section]) if parser.has_section(section) else None
    except (tomllib.TOMLDecodeError, configparser.Error):
        return text


def pytest_configuration(change: FileChange) -> list[str]:
    name = PurePosixPath(change.path).name
    if name not in PYTEST_SECTIONS:
        return []
    before = _pytest_section(name, change.before)
    after = _pytest_section(name, change.after)
    if before == after:
        return []
    where = f"the pytest configuration [{PYTEST_SECTIONS[name][1]}] in {change.path}"
    if not isinstance(before, dict | None) or not isinstance(after, dict | None):
        return [f"changes which tests run: {where}"]
    old, new = before or {}, after or {}
    changed = [
        f"{key} = {new[key]!r}"[:120] if key in new else f"removes {key}"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]
    return [f"changes which tests run: {'; '.join(changed)} in {where}"]


# What a test command's program reads by itself, beyond the files its words name.
PROGRAM_FILES = {
    "make": ("Makefile", "makefile", "GNUmakefile"),
    "tox": ("tox.ini",),
    "nox": ("noxfile.py",),
    "just": ("justfile", "Justfile"),
}


INTERPRETERS = ("sh", "bash", "zsh", "python", "python3")
CONFIG_OPTIONS = ("-c", "--config-file", "--rcfile")


def command_files(command: str | None, tree: Path) -> tuple[str, ...]:
    """The repository files the test command runs or reads (a script, a Makefile, a pytest
    configuration given with -c): a change to one of them changes which tests run, as much as
    a change to the command would. Test files named as arguments are test code, not these."""
    if not command:
        return ()
    try:
        words = shlex.split(command)
    except ValueError:
        return ()
    names: list[str] = []
    starts = [0] + [n + 1 for n, w in enumerate(words) if w in ("&&", "||", ";")]
    for start in starts:
        if start >= len(words):
            continue
        program = words[start]
        names.append(program)
        base = os.path.basename(program)
        names.extend(PROGRAM_FILES.get(base, ()))
        script = words[start + 1] if start + 1 < len(words) else ""
        if base.rstrip("0123456789.") in INTERPRETERS and script and not script.startswith("-"):
            names.append(script)
    pytest_seen = False  # `-c` is pytest's configuration file, but python's code
    for n, word in enumerate(words):
        pytest_seen = pytest_seen or os.path.basename(word) in ("pytest", "py.test")
        if not pytest_seen:
            continue
        if word in CONFIG_OPTIONS and n + 1 < len(words):
            names.append(words[n + 1])
        elif word.startswith(tuple(o + "=" for o in CONFIG_OPTIONS)):
            names.append(word.split("=", 1)[1])
    found: list[str] = []
    for name in names:
        rel = os.path.normpath(name)
        if rel.startswith("..") or os.path.isabs(rel) or "\n" in rel:
            continue
        rel = rel.replace(os.sep, "/")
        try:
            is_file = (tree / rel).is_file()
        except (OSError, ValueError):  # a name too long, or with NUL: not a file of ours
            continue
        if is_file and rel not in found:
            found.append(rel)
    return tuple(found)


def xfail_marks_removed(change: FileChange, own: tuple[str, str] | None = None) -> list[str]:
    """The xfail marks a change removes, but for `own` (test file, test function): the mark a
    feature change for that test removes, whose test EVALUATE then must see pass."""
    names = [
        f"{change.path}::{test}"
        for test in removed_xfail_marks(change.before, change.after)
        if (change.path, test) != own
    ]
    if not names:
        return []
    return [
        f"removes the xfail mark of {_names(names)}: a mark may go only with a feature change "
        "for that very test, which must then pass"
    ]


def feature_test_edits(changes: Iterable[FileChange], own: tuple[str, str] | None) -> list[str]:
    """Why a feature change's edits to test code are not allowed. The one allowed: removing the
    xfail mark of `own` (test file, test function), the test its finding names, and nothing
    else in any test file; and a feature for an xfail test must remove that mark."""
    reasons = []
    removed_own = False
    for change in changes:
        if not is_test_path(change.path) and (own is None or change.path != own[0]):
            continue
        if (
            own is not None
            and change.path == own[0]
            and change.before is not None
            and change.after is not None
            and change.after == without_xfail_mark(change.before, own[1])
        ):
            removed_own = True
            continue
        others = [
            f"{change.path}::{test}"
            for test in removed_xfail_marks(change.before, change.after)
            if (change.path, test) != own
        ]
        if others:
            reasons.append(
                f"removes the xfail mark of {_names(others)}, not of the test this feature is for"
                + (f" ({own[0]}::{own[1]})" if own else "")
            )
        elif own is not None:
            reasons.append(
                f"edits test code in {change.path} beyond removing the xfail mark of "
                f"{own[0]}::{own[1]}, the one test edit a feature change may make"
            )
        else:
            reasons.append(
                f"edits test code in {change.path}: a feature change may edit a test only to "
                "remove the xfail mark of the test it is for"
            )
    if own is not None and not removed_own:
        reasons.append(
            f"does not remove the xfail mark of {own[0]}::{own[1]}: a feature for an xfail "
            "test is kept only when that test passes without its mark"
        )
    return reasons


def _asserts(function: ast.AST) -> bool:
    """Whether a test function checks anything: an assertion that can fail, an assert* call,
    pytest.raises/warns/fail — in its own body, not under `if False:`."""
    for node in _reachable(function):
        if isinstance(node, ast.Assert) and not _cannot_fail(node.test):
            return True
        if isinstance(node, ast.Call):
            name = _name(node.func)
            if name.startswith("assert") or name in ("raises", "warns", "fail"):
                return True
    return False


def tests_asserting_nothing(source: str) -> list[str]:
    """The test functions of a file (`Class.test_x` for methods) that assert nothing."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    found: list[str] = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test"
            ):
                if not _asserts(node):
                    found.append(prefix + node.name)
            elif isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")

    visit(tree.body, "")
    return found


def new_test_problems(changes: Iterable[FileChange]) -> list[str]:
    """Why a change that is to write new tests is not one: it edits or deletes an existing file
    (a test above all: the tests that decide are not its to change), adds a file that is not a
    test, or adds a test file without tests or with a test that asserts nothing."""
    reasons: list[str] = []
    for change in changes:
        if change.before is not None:
            what = "test" if is_test_path(change.path) else "file"
            reasons.append(
                f"edits the existing {what} {change.path}: new tests may only add new test files"
            )
            continue
        name = PurePosixPath(change.path).name
        if not (is_test_path(change.path) and name.startswith("test_") and name.endswith(".py")):
            reasons.append(f"adds {change.path}, which is not a test file (tests/test_*.py)")
            continue
        after = measure(change.after or "")
        if after is None:
            continue  # unparsable: validation rejects it with its own reason
        if not after.tests:
            reasons.append(f"adds {change.path} without a test function in it")
        empty = tests_asserting_nothing(change.after or "")
        if empty:
            reasons.append(
                f"adds {_names([f'{change.path}::{t}' for t in empty])} that assert(s) nothing: "
                "a test that checks nothing is no test"
            )
    return reasons


def examine(
    change: FileChange,
    *,
    runner_files: Iterable[str] = (),
    own_xfail: tuple[str, str] | None = None,
) -> list[str]:
    """Why this change weakens the tests, if it does (empty: it does not, as far as we see).
    `runner_files`: the files the test command runs (see command_files); `own_xfail`: the test
    (file, function) a feature change may remove the xfail mark of."""
    reasons = pytest_configuration(change)
    if change.path in runner_files:
        reasons.append(f"changes which tests run: {change.path} is run by the test command")
    if not is_test_path(change.path) or not change.path.endswith(".py"):
        return reasons
    before = measure(change.before) if change.before is not None else Oracle()
    after = measure(change.after) if change.after is not None else None
    if before is None:
        return reasons
    if change.after is not None and after is None:
        return reasons  # unparsable: validation rejects it with its own reason
    sides = Sides(change.path, before, after)
    for check in TEST_CODE_CHECKS:
        reasons.extend(check(sides))
    reasons.extend(xfail_marks_removed(change, own_xfail))
    return reasons


def _loosened(
    before: list[tuple[str, str, float]], after: list[tuple[str, str, float]]
) -> str | None:
    """The first tolerance that got looser, pairing same call and keyword in order."""
    earlier: dict[tuple[str, str], list[float]] = {}
    for call, kw, value in before:
        earlier.setdefault((call, kw), []).append(value)
    for call, kw, value in after:
        values = earlier.get((call, kw))
        if not values:
            continue
        previous = values.pop(0)
        looser = value > previous if kw in LOOSER_WHEN_BIGGER else value < previous
        if looser:
            return f"{call or 'a call'}({kw}={previous:g} → {value:g})"
    return None
