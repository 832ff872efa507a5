"""A change to a protected path is denied at every autonomy level, and nothing is deployed."""

from __future__ import annotations

import pytest

from support.helpers import ROOT, Harness, git, init_repo, rows

UTIL = "import json\nimport os\n\n\ndef double(x):\n    return x * 2\n"
# Without a test that runs, nothing is evaluable and no change is even proposed.
SMOKE = {"tests/test_smoke.py": "def test_smoke():\n    assert sum([1, 1]) == 2\n"}


@pytest.mark.usefixtures("warm_baseline")
@pytest.mark.parametrize("autonomy", ["supervised", "limited", "full"])
def test_a_policy_protected_path_is_denied(tmp_path, repo, autonomy):
    before = git(repo, "rev-parse", "main")
    h = Harness(
        tmp_path,
        repo,
        policy=f"autonomy: {autonomy}\nprotected_paths: ['pkg/**']\n",
        ruff_select=["F"],
    )
    result = h.cycle()
    h.close()
    [attempt] = result.attempts
    assert attempt["status"] == "denied"
    assert "touches protected path pkg/util.py (pkg/**)" in attempt["failure_reason"]
    assert attempt["git_commit_hash"] is None and attempt["was_deployed"] == 0
    assert git(repo, "rev-parse", "main") == before
    assert git(repo, "branch", "--list", "overseer/*") == ""
    assert git(repo, "worktree", "list").count("\n") == 0
    finished = [
        (e["phase"], e["outcome"])
        for e in rows(h.state_dir, "phase_events")
        if e["kind"] == "PhaseFinished"
    ]
    assert ("SAFETY", "failed") in finished
    assert ("DEPLOY", "skipped") in finished and ("EVALUATE", "skipped") in finished
    # The denial is learned from, and the same change is not proposed again.
    assert rows(h.state_dir, "outcomes")[0]["kept"] == 0


def test_overseers_own_safety_code_is_protected_when_it_is_the_target(tmp_path):
    repo = init_repo(
        tmp_path / "overseer-self",
        {
            "src/overseer/__init__.py": "",
            "src/overseer/core/__init__.py": "",
            "src/overseer/core/safety/policy.py": UTIL,
            **SMOKE,
        },
    )
    h = Harness(tmp_path, repo, policy="autonomy: full\n", ruff_select=["F"])
    result = h.cycle()
    h.close()
    [attempt] = result.attempts
    assert attempt["status"] == "denied"
    assert "src/overseer/core/safety/policy.py" in attempt["failure_reason"]


@pytest.mark.parametrize(
    "path",
    [
        "src/overseer/core/safety/oracle.py",
        "src/overseer/core/generate/candidate.py",
        "src/overseer/core/cycle.py",
        "tests/core/safety/test_guards.py",
        "tests/support/drill.py",
    ],
)
def test_the_guards_and_their_tests_are_protected_when_overseer_is_the_target(tmp_path, path):
    repo = init_repo(
        tmp_path / "overseer-self",
        {
            "src/overseer/__init__.py": "",
            "src/overseer/core/__init__.py": "",
            "src/overseer/core/safety/policy.py": "def policy():\n    return 1\n",
            path: UTIL,
            **SMOKE,
        },
    )
    h = Harness(tmp_path, repo, policy="autonomy: full\n", ruff_select=["F"])
    result = h.cycle(require_approval=False)
    h.close()
    [attempt] = result.attempts
    assert attempt["status"] == "denied"
    assert f"touches protected path {path}" in attempt["failure_reason"]


def test_the_policy_file_inside_the_target_is_protected(tmp_path):
    from overseer.config import OverseerConfig, TargetConfig
    from overseer.runtime import Runtime

    repo = init_repo(tmp_path / "proj", {"ops/policy.yaml": "autonomy: full\n", "m.py": UTIL})
    config = OverseerConfig(policy=repo / "ops/policy.yaml", targets=[TargetConfig(path=repo)])
    rt = Runtime.create(config, tmp_path / "state")
    ctx = rt.context(config.targets[0])
    assert ctx.policy.protected_match("ops/policy.yaml") == "ops/policy.yaml"
    assert ctx.policy.protected_match(".github/workflows/ci.yml") == ".github/**"
    assert ctx.policy.protected_match("deep/poetry.lock") == "*.lock"
    assert ctx.policy.protected_match("m.py") is None
    rt.close()


def test_every_test_of_the_guards_and_what_it_stands_on_is_protected_in_this_checkout():
    """Overseer as its own target: the files that prove the guards (and a new one added next to
    them) are protected, and so is what they import and every conftest.py, whose hooks could
    deselect any test."""
    from overseer.core.safety.policy import CompiledPolicy, Policy
    from overseer.core.safety.validate import protected_for

    policy = CompiledPolicy(Policy(autonomy="full")).with_protected(protected_for(ROOT, []))
    tests = ROOT / "tests"
    guarded = [
        *(tests / "core" / "safety").rglob("*.py"),
        *(tests / "faults").rglob("*.py"),
        *(tests / "support").rglob("*.py"),
        *tests.rglob("conftest.py"),
        tests / "core" / "test_recovery.py",
        tests / "core" / "safety" / "test_added_later.py",
        tests / "cli" / "conftest.py",
    ]
    assert len(guarded) > 20
    names = [str(path.relative_to(ROOT)) for path in guarded]
    assert [name for name in names if policy.protected_match(name) is None] == []
    # Not everything: the other tests stay open to improvement.
    assert policy.protected_match("tests/tui/test_tui.py") is None
