"""Which findings are worth an attempt, best first.

The score multiplies what kind of finding it is (a failing test matters more than a lint
nit), whether a configured generator can act on it, and what was learned: the success rate of
this generator on this kind of finding so far, smoothed so that a new kind starts at 1/2 and
a kind that keeps failing sinks. Features (analyze/features.py) are learned as one: what a
generator does with one kind of feature says most about the others, and their order among
themselves stays the order of how checkable they are (an xfail test, a NotImplementedError a
test reaches, a TODO).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable

from overseer.base.globs import first_match
from overseer.core.analyze import features
from overseer.core.analyze.findings import Finding

KIND_WEIGHT = {
    "failing_test": 3.0,
    "flaky_test": 2.0,
    "slow_regression": 2.0,
    "benchmark_regression": 2.0,
    "slow_test": 1.5,
    # Features, by how checkable they are (features.py): an xfail test is its own oracle, a
    # NotImplementedError has tests that reach it, a TODO has nothing to check it.
    "xfail_test": 2.5,
    "not_implemented": 1.5,
    "todo": 0.5,
    # Lines no test runs (coverage.py): a new test that proves itself (analyze/coverage.py).
    "uncovered_code": 0.8,
}
LINT_WEIGHT = 1.0
UNACTIONABLE = 0.1
TEST_FILE_PENALTY = 0.5
TEST_PATHS = ("tests/**", "test_*.py", "*_test.py", "conftest.py")


def learned_rate(kept: int, attempts: int) -> float:
    """Posterior mean of a Beta(1, 1) prior: 1/2 with no history."""
    return (kept + 1) / (attempts + 2)


def ranking_seed(
    commit: str, findings: list[Finding], counts: dict[tuple[str, str], tuple[int, int]]
) -> str:
    """What the ranking's draws are seeded by: the state they rank (the commit, its findings,
    what was learned so far), never the run. Two runs on the same state rank alike — a dry run
    previews the real one — and each new outcome or commit draws afresh, so what has little
    history still gets its chances over time."""
    state = {
        "commit": commit,
        "findings": sorted([f.kind, f.file or "", f.count] for f in findings),
        "learned": sorted([g, k, kept, n] for (g, k), (kept, n) in counts.items()),
    }
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def rank(
    findings: list[Finding],
    *,
    area: str,
    generator_for: Callable[[Finding], str | None],
    counts: dict[tuple[str, str], tuple[int, int]],
    rng: random.Random | None = None,
) -> list[Finding]:
    """Best first. With `rng`, each generator × finding kind's success rate is drawn from its
    Beta posterior (Thompson sampling) rather than taken at its mean: kinds that keep failing
    are tried less, yet a kind with little history still gets its chances."""
    chosen = [f for f in findings if area == "auto" or f.area == area]
    drawn: dict[tuple[str, str], float] = {}  # one draw per generator × kind, not per finding
    for f in chosen:
        score = KIND_WEIGHT.get(f.kind, LINT_WEIGHT)
        generator = generator_for(f)
        if generator is None:
            score *= UNACTIONABLE
        else:
            kinds = features.KINDS if f.area == features.AREA else (f.kind,)
            kept = sum(counts.get((generator, kind), (0, 0))[0] for kind in kinds)
            attempts = sum(counts.get((generator, kind), (0, 0))[1] for kind in kinds)
            if rng is None:
                score *= learned_rate(kept, attempts)
            else:
                key = (generator, features.AREA if f.area == features.AREA else f.kind)
                if key not in drawn:
                    drawn[key] = rng.betavariate(kept + 1, attempts - kept + 1)
                score *= drawn[key]
        # A feature's test file is where its oracle is, not what the change is about.
        if f.file and f.change_type != "feature" and first_match(TEST_PATHS, f.file):
            score *= TEST_FILE_PENALTY
        score *= 1 + min(f.count, 10) / 10
        f.score = round(score, 4)
    return sorted(chosen, key=lambda f: (-f.score, f.kind, f.file or ""))
