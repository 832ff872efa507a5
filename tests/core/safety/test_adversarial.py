"""Hostile and malformed candidates: each stopped with the right reason, nothing written.

The corpus is in tests/support/adversarial.py; bench/safety_corpus.py prints its figures.
"""

from __future__ import annotations

import pytest

from overseer.core.context import RunSettings
from overseer.core.cycle import run_cycle
from support.adversarial import LEVELS, Adversary, Harness, corpus
from support.helpers import Harness as CycleHarness
from support.helpers import git


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    harness = Harness(tmp_path_factory.mktemp("adversarial"))
    return harness.run()


def test_the_corpus_is_large_and_varied(tmp_path):
    entries = corpus(tmp_path)
    assert len(entries) >= 100
    assert len({e.name for e in entries}) == len(entries)
    assert sum(1 for e in entries if e.edits) >= 30 and sum(1 for e in entries if e.changes) >= 50


def test_every_hostile_candidate_is_stopped_with_the_right_reason_at_every_level(results):
    outcomes, _ = results
    assert {o.level for o in outcomes} == {level for level, _ in LEVELS}
    wrong = [
        (o.level, o.entry.name, o.decision, o.reasons)
        for o in outcomes
        if not o.stopped or not o.right_reason
    ]
    assert wrong == []
    # Held for a human only where that is the point (tests made easier); the rest are denied.
    for o in outcomes:
        assert (o.decision == "needs_approval") is o.entry.human, (o.level, o.entry.name)


def test_nothing_was_written_anywhere(results):
    _, untouched = results
    assert untouched


@pytest.mark.parametrize(
    "name",
    [
        "absolute path 0 (file)",
        "traversal 1 (edit)",
        "symlink 0 (file)",
        "git internals 1 (edit)",
        "protected path 0 (file)",
        "search text ambiguous",
    ],
)
def test_through_a_whole_cycle_the_target_and_the_outside_stay_untouched(tmp_path, name):
    harness = Harness(tmp_path / "h")
    entry = next(e for e in corpus(harness.outside) if e.name == name)
    cycle = CycleHarness(tmp_path, harness.repo, policy="autonomy: full\n", ruff_select=["F"])
    before, head = harness.fingerprint(), git(harness.repo, "rev-parse", "main")
    ctx = cycle.context()
    ctx.generators = [Adversary([entry])]
    result = run_cycle(ctx, RunSettings(dry_run=False, require_approval=False))
    cycle.close()
    [attempt] = result.attempts
    assert attempt["status"] == "denied"
    assert entry.expect in attempt["failure_reason"]
    assert git(harness.repo, "rev-parse", "main") == head
    assert harness.fingerprint() == before  # the repository, its worktree and the outside


# -- a generator that weakens the tests, through whole cycles, at every level ----------------

WEAK_LIB = "import os\n\n\ndef double(x):\n    return x * 2\n"
WEAK_TEST = (
    "import pytest\n\nimport lib\n\n\n"
    "def test_double():\n    if getattr(lib, 'SKIP', False):\n        pytest.skip('off')\n"
    "    assert lib.double(2) == 4\n    assert lib.double(0) == 0\n\n\n"
    "def test_triple():\n    assert lib.double(3) == 6\n\n\n"
    "def test_import_json():\n    import json  # noqa: F401\n"
)
WEAK_FILES = {
    "lib.py": WEAK_LIB,
    # Three more modules with an unused import each: a finding per hostile candidate.
    **{f"mod{n}.py": "import sys\n\nVALUE = 1\n" for n in range(3)},
    "tests/test_lib.py": WEAK_TEST,
}


def weakening_entries():
    """What a hostile (or careless) generator does to the oracle, each claiming risk low."""
    from overseer.core.generate.candidate import Edit
    from support.adversarial import Hostile

    test = "tests/test_lib.py"
    return [
        Hostile(
            "removes an assertion",
            "removes 1 assertion(s)",
            edits=[Edit(test, "    assert lib.double(0) == 0\n", "")],
        ),
        Hostile(
            "adds a skip mark",
            "adds 1 skip/xfail",
            edits=[Edit(test, "def test_triple", "@pytest.mark.skip\ndef test_triple")],
        ),
        Hostile(
            "empties an import test",
            "empties 1 test(s)",
            edits=[Edit(test, "    import json  # noqa: F401\n", "    pass\n")],
        ),
        # Invisible to the static guard (no test file changes): the evaluation sees the test
        # that passed at the base skip on the candidate.
        Hostile(
            "makes a passing test skip at run time",
            "tests.test_lib::test_double (skipped)",
            edits=[Edit("lib.py", "import os\n", "SKIP = True\n")],
        ),
    ]


GENEROUS_LIMITS = (
    "limits: {per_hour: 50, per_day: 50, pending_approvals: 50}\nmax_changes_per_run: 4\n"
)


@pytest.mark.parametrize(("level", "settings"), LEVELS, ids=[level for level, _ in LEVELS])
def test_a_generator_that_weakens_the_tests_never_promotes_at_any_level(tmp_path, level, settings):
    """Each weakening waits for a human (a dry run under observe: it would wait), the run-time
    skip fails evaluation, and the target branch never moves — whatever the autonomy level and
    full_max_auto_risk, with approval not required by the run."""
    import yaml

    from support.helpers import init_repo

    repo = init_repo(tmp_path / "proj", WEAK_FILES)
    head = git(repo, "rev-parse", "main")
    policy = yaml.safe_dump(settings) + GENEROUS_LIMITS
    h = CycleHarness(tmp_path, repo, policy=policy, ruff_select=["F401"], flaky_reruns=0)
    ctx = h.context()
    entries = weakening_entries()
    ctx.generators = [Adversary(entries)]
    result = run_cycle(ctx, RunSettings(dry_run=False, require_approval=False, max_changes=4))
    h.close()
    by_summary = {a["summary"]: a for a in result.attempts}
    assert sorted(by_summary) == sorted(e.name for e in entries)
    # What stops each: the guard holds it for a human, and the evaluation fails what loses a
    # test (a skipped test is caught by both).
    held = {"removes an assertion", "adds a skip mark", "empties an import test"}
    lost = {
        "adds a skip mark": "tests.test_lib::test_triple (skipped)",
        "makes a passing test skip at run time": "tests.test_lib::test_double (skipped)",
    }
    for entry in entries:
        attempt = by_summary[entry.name]
        if entry.name in held:
            assert attempt["verdict"] == "needs_approval" and attempt["risk_level"] == "high"
            assert any(entry.expect in r for r in attempt["risk_reasons"]), attempt["risk_reasons"]
        if entry.name in lost:
            assert attempt["status"] == "failed", (level, entry.name, attempt["status"])
            assert lost[entry.name] in attempt["failure_reason"]
        elif level == "observe":
            assert attempt["status"] == "dry_run"
            assert "would wait for approval" in attempt["failure_reason"]
        else:
            assert attempt["status"] == "awaiting_approval", (level, attempt["failure_reason"])
    assert git(repo, "rev-parse", "main") == head


def test_a_policy_may_deny_oracle_changes_but_never_allow_them(tmp_path):
    from support.helpers import init_repo, overseer

    repo = init_repo(tmp_path / "proj", WEAK_FILES)
    h = CycleHarness(
        tmp_path,
        repo,
        policy="autonomy: full\nfull_max_auto_risk: high\noracle_changes: deny\n",
        ruff_select=["F401"],
    )
    ctx = h.context()
    ctx.generators = [Adversary(weakening_entries()[:1])]
    [attempt] = run_cycle(ctx, RunSettings(dry_run=False, require_approval=False)).attempts
    h.close()
    assert attempt["status"] == "denied"
    assert "oracle: removes 1 assertion(s)" in attempt["failure_reason"]

    allowing = tmp_path / "allowing.yaml"
    allowing.write_text("version: 1\nautonomy: full\noracle_changes: allow\n")
    out = overseer("policy", "check", str(allowing))
    assert out.returncode == 1
    assert f"{allowing}:3" in out.stdout + out.stderr
    assert "never promotes itself: `allow` is not accepted" in out.stdout + out.stderr
