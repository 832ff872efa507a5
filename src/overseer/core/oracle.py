"""The oracle-integrity guard: a change must not make the tests easier to pass.

Tests are the oracle that decides whether a change is kept. A change that deletes or weakens
assertions, adds skip or xfail marks, or loosens a numeric tolerance in test code would pass
more easily without being better, so it is high risk whatever its generator says. So is one
that changes which tests run (`collect_ignore` in a conftest, `--deselect`/`--ignore`/`-k` in
the pytest configuration). Measured from the files' syntax trees (and the configuration's
text) before and after, not from the generator's description: an assertion that cannot fail
(`assert x == x`, `assert True`) or cannot run (under `if False:`) does not count.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from overseer.core.candidate import FileChange
from overseer.core.globs import first_match
from overseer.core.policy import TEST_PATHS

SKIP_NAMES = {"skip", "skipif", "xfail", "skipIf", "skipUnless", "expectedFailure", "importorskip"}
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


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def measure(source: str) -> Oracle | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
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
            # `pytest.skip("…")`, `@unittest.expectedFailure`.
            oracle.skips += 1
    return oracle


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


# Configuration that decides which tests run; a change adding one of these runs fewer tests.
TEST_SELECTION_FILES = ("conftest.py", "pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini")
TEST_SELECTION_WORDS = (
    "collect_ignore",
    "pytest_ignore_collect",
    "pytest_collection_modifyitems",
    "--deselect",
    "--ignore",
    "norecursedirs",
    "testpaths",
    "python_files",
    "python_functions",
    "-k ",
    "-m ",
)


def _selection(change: FileChange) -> list[str]:
    name = change.path.rsplit("/", 1)[-1]
    if name not in TEST_SELECTION_FILES:
        return []
    before, after = change.before or "", change.after or ""
    added = [w.strip() for w in TEST_SELECTION_WORDS if after.count(w) > before.count(w)]
    if not added:
        return []
    return [f"changes which tests run: adds {', '.join(added)} to {change.path}"]


def examine(change: FileChange) -> list[str]:
    """Why this change weakens the tests, if it does (empty: it does not, as far as we see)."""
    selection = _selection(change)
    if not is_test_path(change.path) or not change.path.endswith(".py"):
        return selection
    before = measure(change.before) if change.before is not None else Oracle()
    after = measure(change.after) if change.after is not None else None
    if before is None:
        return selection
    if change.after is None:
        return [f"deletes the test file {change.path} ({before.assertions} assertion(s))"]
    if after is None:
        return selection  # unparsable: validation rejects it with its own reason
    reasons = selection
    if after.assertions < before.assertions:
        reasons.append(
            f"removes {before.assertions - after.assertions} assertion(s) from {change.path}"
        )
    elif after.comparisons < before.comparisons:
        reasons.append(
            f"weakens {before.comparisons - after.comparisons} assertion(s) in {change.path} "
            "(a comparison became a plain truth test)"
        )
    if after.skips > before.skips:
        reasons.append(f"adds {after.skips - before.skips} skip/xfail mark(s) to {change.path}")
    loosened = _loosened(before.tolerances, after.tolerances)
    if loosened:
        reasons.append(f"loosens a tolerance in {change.path}: {loosened}")
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
