"""The oracle-integrity guard: a change must not make the tests easier to pass.

Tests are the oracle that decides whether a change is kept. A change that deletes or weakens
assertions, adds skip or xfail marks, or loosens a numeric tolerance in test code would pass
more easily without being better, so it is high risk whatever its generator says. Measured
from the files' syntax trees before and after, not from the generator's description.
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
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
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


def examine(change: FileChange) -> list[str]:
    """Why this change weakens the tests, if it does (empty: it does not, as far as we see)."""
    if not is_test_path(change.path) or not change.path.endswith(".py"):
        return []
    before = measure(change.before) if change.before is not None else Oracle()
    after = measure(change.after) if change.after is not None else None
    if before is None:
        return []
    if change.after is None:
        return [f"deletes the test file {change.path} ({before.assertions} assertion(s))"]
    if after is None:
        return []  # unparsable: validation rejects it with its own reason
    reasons = []
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
