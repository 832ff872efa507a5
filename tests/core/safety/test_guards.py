"""The guards a self-modifying system cannot talk its way past: oracle integrity, risk
composition, rate limits, the circuit breaker, secrets, and the audit of autonomy changes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from overseer.base.clock import FakeClock, iso
from overseer.core.generate.candidate import FileChange
from overseer.core.plumbing.bus import EventBus
from overseer.core.plumbing.secrets import Redactor
from overseer.core.record.history import History
from overseer.core.safety.oracle import command_files, examine
from overseer.core.safety.policy import (
    BUILTIN_PROTECTED,
    CompiledPolicy,
    Conditions,
    Decision,
    Policy,
    Risk,
    Rule,
)
from overseer.core.safety.ratelimit import (
    BREAKER,
    RateLimiter,
    consecutive_failures,
    trip_breaker_if_needed,
)
from overseer.vocabulary import AttemptStatus
from support.facts import facts

TEST = """import math
import pytest


def test_sum():
    assert add(1, 2) == 3
    assert add(2, 2) == 4


def test_float():
    assert ratio() == pytest.approx(0.5, rel=1e-9)
    assert math.isclose(ratio(), 0.5, abs_tol=1e-12)


def test_raises():
    with pytest.raises(ValueError):
        add("a", 1)
"""


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (TEST.replace("    assert add(2, 2) == 4\n", ""), "removes 1 assertion(s)"),
        (TEST.replace("assert add(1, 2) == 3", "assert add(1, 2)"), "weakens 1 assertion(s)"),
        (
            TEST.replace("def test_sum", "@pytest.mark.skip(reason='flaky')\ndef test_sum"),
            "adds 1 skip/xfail",
        ),
        (TEST.replace("def test_float", "@pytest.mark.xfail\ndef test_float"), "adds 1 skip/xfail"),
        (
            TEST.replace("def test_sum():\n", "def test_sum():\n    pytest.skip('later')\n"),
            "adds 1 skip/xfail",
        ),
        (TEST.replace("rel=1e-9", "rel=0.1"), "loosens a tolerance"),
        (TEST.replace("abs_tol=1e-12", "abs_tol=1e-3"), "loosens a tolerance"),
        (
            TEST.replace(
                '    with pytest.raises(ValueError):\n        add("a", 1)\n', "    add('a', 1)\n"
            ),
            "removes 1 assertion(s)",
        ),
        (None, "deletes the test file"),
        # Assertions that cannot fail, or cannot run, are no assertions.
        (TEST.replace("assert add(2, 2) == 4", "assert add(2, 2) == add(2, 2)"), "removes 1"),
        (TEST.replace("assert add(2, 2) == 4", "assert True"), "removes 1 assertion(s)"),
        (
            TEST.replace(
                "    assert add(2, 2) == 4\n", "    if False:\n        assert add(2, 2) == 4\n"
            ),
            "removes 1 assertion(s)",
        ),
    ],
)
def test_the_oracle_guard_sees_weakened_tests(after, expected):
    reasons = examine(FileChange("tests/test_math.py", TEST, after))
    assert any(expected in r for r in reasons), reasons


@pytest.mark.parametrize(
    "after",
    [
        TEST,  # unchanged
        TEST.replace("rel=1e-9", "rel=1e-12"),  # tighter
        TEST + "\n\ndef test_more():\n    assert add(0, 0) == 0\n",  # more tests
        TEST.replace("import math\n", "import math  # for isclose\n"),  # cosmetic
    ],
)
def test_the_oracle_guard_lets_honest_test_edits_be(after):
    assert examine(FileChange("tests/test_math.py", TEST, after)) == []


@pytest.mark.parametrize(
    ("path", "before", "after", "expected"),
    [
        ("conftest.py", "", "collect_ignore = ['tests/test_slow.py']\n", "collect_ignore"),
        (
            "tests/conftest.py",
            "import pytest\n",
            "import pytest\n\ndef pytest_ignore_collect(collection_path):\n    return True\n",
            "pytest_ignore_collect",
        ),
        (
            "pyproject.toml",
            "[tool.pytest.ini_options]\naddopts = '-q'\n",
            "[tool.pytest.ini_options]\naddopts = '-q --deselect tests/test_a.py::test_b'\n",
            "--deselect",
        ),
        (
            "setup.cfg",
            "[tool:pytest]\n",
            "[tool:pytest]\naddopts = -k 'not slow'\n",
            "-k 'not slow'",
        ),
        ("pytest.ini", "[pytest]\n", "[pytest]\ntestpaths = tests/unit\n", "testpaths"),
        # Nested test packages are test code too.
        (
            "src/pkg/tests/test_x.py",
            TEST,
            TEST.replace("    assert add(2, 2) == 4\n", ""),
            "removes 1",
        ),
    ],
)
def test_the_oracle_guard_sees_fewer_tests_run(path, before, after, expected):
    reasons = examine(FileChange(path, before, after))
    assert any(expected in r for r in reasons), reasons


IMPORTS = """import pytest


def test_import_json():
    import json  # noqa: F401


class TestImports:
    def test_import_os(self):
        import os  # noqa: F401

    def test_placeholder(self):
        pass
"""


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        # What ruff's F401 fix does to a test that exists to import something.
        (IMPORTS.replace("    import json  # noqa: F401\n", "    pass\n"), "empties 1 test(s)"),
        (
            IMPORTS.replace("        import os  # noqa: F401\n", '        """Imports."""\n'),
            "TestImports.test_import_os",
        ),
        (IMPORTS.replace("    import json  # noqa: F401\n", "    ...\n"), "empties 1 test(s)"),
        (IMPORTS.replace("    import json  # noqa: F401\n", "    return\n"), "empties 1 test(s)"),
        (
            IMPORTS.replace("def test_import_json():\n    import json  # noqa: F401\n", ""),
            "deletes 1 test(s)",
        ),
        (IMPORTS.replace("def test_import_json", "def helper_json"), "deletes 1 test(s)"),
        (IMPORTS.replace("class TestImports", "class Imports"), "deletes 2 test(s)"),
        (
            IMPORTS.replace("import pytest\n", "import pytest\nimport unittest\n").replace(
                "    import json  # noqa: F401\n", "    raise unittest.SkipTest('later')\n"
            ),
            "adds 1 skip/xfail",
        ),
    ],
)
def test_the_oracle_guard_sees_tests_lost_or_emptied(after, expected):
    reasons = examine(FileChange("tests/test_imports.py", IMPORTS, after))
    assert any(expected in r for r in reasons), reasons


def test_a_placeholder_test_staying_empty_or_a_new_test_is_no_loss():
    more = IMPORTS + "\n\ndef test_import_re():\n    import re  # noqa: F401\n"
    assert examine(FileChange("tests/test_imports.py", IMPORTS, more)) == []
    cosmetic = IMPORTS.replace("        pass\n", "        pass  # to do\n")
    assert examine(FileChange("tests/test_imports.py", IMPORTS, cosmetic)) == []


@pytest.mark.parametrize(
    ("path", "before", "after", "expected"),
    [
        # Any change to a conftest's hooks or collection settings, in any direction.
        (
            "tests/conftest.py",
            "def pytest_collection_modifyitems(items):\n    items.sort(key=str)\n",
            "def pytest_collection_modifyitems(items):\n    del items[1:]\n",
            "pytest_collection_modifyitems",
        ),
        ("conftest.py", "collect_ignore = []\n", "collect_ignore = ['x']\n", "collect_ignore"),
        ("conftest.py", "", "pytest_plugins = ['evil']\n", "pytest_plugins"),
        ("tests/test_a.py", "", "import pytest\npytestmark = pytest.mark.skip\n", "pytestmark"),
        # Any pytest option in any file pytest reads them from, not only known words.
        (
            "pyproject.toml",
            "[tool.pytest.ini_options]\naddopts = '-q'\n",
            "[tool.pytest.ini_options]\naddopts = '-q -p no:randomly --maxfail=1'\n",
            "addopts",
        ),
        (
            "pyproject.toml",
            "[project]\nname = 'x'\n",
            "[project]\nname = 'x'\n[tool.pytest.ini_options]\nminversion = '7'\n",
            "minversion",
        ),
        ("tox.ini", "[pytest]\nmarkers = slow\n", "[pytest]\n", "removes markers"),
        ("sub/pytest.ini", "[pytest]\n", "[pytest]\npython_classes = Nothing\n", "python_classes"),
    ],
)
def test_the_oracle_guard_sees_changes_to_what_pytest_collects(path, before, after, expected):
    reasons = examine(FileChange(path, before, after))
    assert any(expected in r and "changes which tests run" in r for r in reasons), reasons


def test_configuration_outside_pytest_and_other_files_are_not_oracle_changes():
    toml = "[project]\nname = 'x'\n[tool.pytest.ini_options]\naddopts = '-q'\n"
    assert examine(FileChange("pyproject.toml", toml, toml.replace("'x'", "'y'"))) == []
    assert (
        examine(FileChange("setup.cfg", "[metadata]\nname = x\n", "[metadata]\nname = y\n")) == []
    )


def test_a_file_the_test_command_runs_is_part_of_the_oracle(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "test.sh").write_text("pytest -q\n")
    (tmp_path / "Makefile").write_text("test:\n\tpytest\n")
    (tmp_path / "ci.ini").write_text("[pytest]\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("def test_a():\n    pass\n")
    assert command_files("bash scripts/test.sh", tmp_path) == ("scripts/test.sh",)
    assert command_files("./scripts/test.sh --fast", tmp_path) == ("scripts/test.sh",)
    assert command_files("make test", tmp_path) == ("Makefile",)
    assert command_files("python -m pytest -c ci.ini tests/test_a.py", tmp_path) == ("ci.ini",)
    assert command_files("cd . && make test", tmp_path) == ("Makefile",)
    assert command_files("/usr/bin/python -m pytest ../x", tmp_path) == ()
    assert command_files("unbalanced 'quote", tmp_path) == ()
    assert command_files("python -c 'import x' ci.ini", tmp_path) == ()  # python's -c is code
    assert command_files("python -c '" + "x" * 5000 + "'", tmp_path) == ()
    change = FileChange("scripts/test.sh", "pytest -q\n", "pytest -q -k 'not slow'\n")
    reasons = examine(change, runner_files=("scripts/test.sh",))
    assert reasons == ["changes which tests run: scripts/test.sh is run by the test command"]
    assert examine(change) == []


def test_the_oracle_guard_only_watches_test_code():
    assert (
        examine(FileChange("pkg/math.py", TEST, TEST.replace("    assert add(2, 2) == 4\n", "")))
        == []
    )


def judge(policy=None, require_approval=False, **kw):
    return CompiledPolicy(policy or Policy(autonomy="full")).judge(
        facts(**kw), require_approval=require_approval
    )


@pytest.mark.parametrize(
    ("kw", "risk", "reason"),
    [
        ({}, Risk.LOW, "llm rates it low"),
        (
            {"oracle": ("removes 1 assertion(s) from tests/test_x.py",)},
            Risk.HIGH,
            "oracle: removes 1 assertion",
        ),
        (
            {"change_type": "bugfix", "paths": ("pkg/a.py", "tests/test_a.py")},
            Risk.HIGH,
            "claims a fix but edits tests: tests/test_a.py",
        ),
        ({"predicted_success": 0.3}, Risk.MEDIUM, "predicted success 0.30 < 0.35"),
        ({"predicted_success": 0.1}, Risk.HIGH, "predicted success 0.10 < 0.2"),
        ({"predicted_success": 0.5}, Risk.LOW, "llm rates it low"),
        ({"lines_changed": 30}, Risk.MEDIUM, "changes 30 lines"),
        ({"stated_risk": Risk.HIGH, "predicted_success": 0.9}, Risk.HIGH, "llm rates it high"),
    ],
)
def test_risk_is_the_highest_of_every_source(kw, risk, reason):
    verdict = judge(**kw)
    assert verdict.risk is risk
    assert any(reason in r for r in verdict.reasons), verdict.reasons


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        "deploy/.env.production",
        "certs/server.pem",
        "home/.netrc",
        "keys/id_rsa.pub",
        "ci/credentials-prod.json",
    ],
)
def test_secret_files_are_protected(path):
    verdict = judge(paths=(path,))
    assert verdict.decision is Decision.DENY and "touches protected path" in verdict.why()


# -- properties: no rule set lowers the stated risk or opens a protected path ---------------

rules = st.lists(
    st.builds(
        Rule,
        name=st.uuids().map(str),
        when=st.builds(
            Conditions,
            paths=st.one_of(
                st.none(),
                st.lists(
                    st.sampled_from(["**", "*", "pkg/**", ".git/**", "*.lock", "tests/**"]),
                    min_size=1,
                    max_size=3,
                ),
            ),
            generator=st.one_of(st.none(), st.just(["llm"])),
            min_lines=st.one_of(st.none(), st.integers(0, 50)),
        ),
        # A rule has a risk, a verdict or both (one with neither, or with only `verdict:
        # allow`, changes nothing and is refused by the policy).
        risk=st.one_of(st.none(), st.sampled_from(list(Risk))),
        verdict=st.sampled_from([Decision.NEEDS_APPROVAL, Decision.DENY]),
        reason=st.text(max_size=20),
    )
    | st.builds(
        Rule,
        name=st.uuids().map(str),
        when=st.builds(Conditions, paths=st.just(["**"])),
        risk=st.sampled_from(list(Risk)),
        verdict=st.just(Decision.ALLOW),
    )
    | st.builds(
        Rule,
        name=st.uuids().map(str),
        when=st.builds(Conditions, paths=st.just(["**"])),
        risk=st.sampled_from(list(Risk)),
        verdict=st.none(),
    ),
    max_size=5,
)
policies = st.builds(
    Policy,
    autonomy=st.sampled_from(["observe", "supervised", "limited", "full"]),
    full_max_auto_risk=st.sampled_from(list(Risk)),
    oracle_changes=st.sampled_from([Decision.NEEDS_APPROVAL, Decision.DENY]),
    rules=rules,
    protected_paths=st.lists(st.sampled_from(["pkg/**", "docs/**", "*.cfg"]), max_size=2),
)
paths = st.lists(
    st.sampled_from(
        [
            "pkg/util.py",
            "tests/test_x.py",
            "README.md",
            ".git/config",
            "poetry.lock",
            ".github/workflows/ci.yml",
            ".env",
            "src/app.py",
        ]
    ),
    min_size=1,
    max_size=3,
    unique=True,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy=policies,
    stated=st.sampled_from(list(Risk)),
    chosen=paths,
    lines=st.integers(0, 500),
    success=st.one_of(st.none(), st.floats(0, 1)),
    require=st.booleans(),
    oracle=st.lists(st.sampled_from(["removes 1 assertion(s)", "empties 1 test(s)"]), max_size=1),
)
def test_no_policy_lowers_the_stated_risk_or_lets_a_protected_path_through(
    policy, stated, chosen, lines, success, require, oracle
):
    compiled = CompiledPolicy(policy)
    verdict = compiled.judge(
        facts(
            paths=tuple(chosen),
            stated_risk=stated,
            lines_changed=lines,
            predicted_success=success,
            oracle=tuple(oracle),
        ),
        require_approval=require,
    )
    assert verdict.risk.rank >= stated.rank
    if oracle:  # a change that weakens the tests never promotes itself, whatever the policy
        assert verdict.decision is not Decision.ALLOW and verdict.risk is Risk.HIGH
    if any(compiled.protected_match(p) for p in chosen) or any(
        p in (".git/config", "poetry.lock", ".github/workflows/ci.yml", ".env") for p in chosen
    ):
        assert verdict.decision is Decision.DENY
    if require and verdict.decision is Decision.ALLOW:
        raise AssertionError("require_approval was ignored")
    assert set(BUILTIN_PROTECTED) <= set(compiled.protected)


# -- rate limits and the circuit breaker, with an injected clock, across a restart ----------


def attempt(
    history: History, n: int, status: str, *, at, dry_run: int = 0, rolled_back_at=None
) -> None:
    history.create_attempt(
        improvement_id=f"{n:012x}",
        target="proj",
        status=status,
        dry_run=dry_run,
        git_commit_hash="c" * 40,
        started_at=iso(at),
        rolled_back_at=iso(rolled_back_at) if rolled_back_at else None,
    )


def test_hourly_and_daily_limits_survive_a_restart(tmp_path):
    clock = FakeClock()
    policy = CompiledPolicy(Policy(limits={"per_hour": 2, "per_day": 3}))
    history = History(tmp_path / "h.sqlite3", clock)
    attempt(history, 1, "promoted", at=clock.now())
    attempt(history, 2, "failed", at=clock.now())
    attempt(history, 3, "dry_run", at=clock.now(), dry_run=1)  # dry runs spend nothing
    history.close()

    history = History(tmp_path / "h.sqlite3", clock)  # a restart
    limiter = RateLimiter(history, policy, clock)
    assert "2 changes in the last hour (limits.per_hour=2)" in limiter.why_not(
        "proj", dry_run=False
    )
    assert limiter.why_not("proj", dry_run=True) is None
    assert limiter.why_not("other", dry_run=False) is None
    clock.advance(3601)
    assert limiter.why_not("proj", dry_run=False) is None
    attempt(history, 4, "promoted", at=clock.now())
    assert "3 changes in the last day (limits.per_day=3)" in limiter.why_not("proj", dry_run=False)
    clock.advance(86400)
    assert limiter.why_not("proj", dry_run=False) is None
    assert limiter.budget("proj")["hour"] == {"used": 0, "limit": 2}


def test_cooldown_after_a_rollback(tmp_path):
    clock = FakeClock()
    history = History(tmp_path / "h.sqlite3", clock)
    attempt(
        history, 1, "rolled_back", at=clock.now() - timedelta(days=2), rolled_back_at=clock.now()
    )
    limiter = RateLimiter(
        history, CompiledPolicy(Policy(limits={"cooldown_after_rollback": "30m"})), clock
    )
    assert "cooling down after a rollback" in limiter.why_not("proj", dry_run=False)
    assert limiter.budget("proj")["cooldown_until"]
    history.close()
    history = History(tmp_path / "h.sqlite3", clock)  # a restart does not end the cooldown
    policy = CompiledPolicy(Policy(limits={"cooldown_after_rollback": "30m"}))
    limiter = RateLimiter(history, policy, clock)
    assert "cooling down after a rollback" in limiter.why_not("proj", dry_run=False)
    clock.advance(1801)
    assert limiter.why_not("proj", dry_run=False) is None


def test_pending_approvals_at_once_are_limited_across_a_restart(tmp_path):
    clock = FakeClock()
    policy = CompiledPolicy(Policy(limits={"pending_approvals": 2, "per_hour": 10}))
    history = History(tmp_path / "h.sqlite3", clock)
    attempt(history, 1, "awaiting_approval", at=clock.now())
    assert RateLimiter(history, policy, clock).why_not("proj", dry_run=False) is None
    attempt(history, 2, "ready_to_promote", at=clock.now())  # approved, not yet promoted
    history.close()
    history = History(tmp_path / "h.sqlite3", clock)
    limiter = RateLimiter(history, policy, clock)
    assert "2 changes wait for a decision (limits.pending_approvals=2)" in limiter.why_not(
        "proj", dry_run=False
    )
    assert limiter.why_not("proj", dry_run=True) is None  # a dry run waits for no one
    assert history.move("000000000001", "awaiting_approval", AttemptStatus.REJECTED)
    assert limiter.why_not("proj", dry_run=False) is None


def test_the_circuit_breaker_pauses_autonomy_until_a_human_resumes(tmp_path):
    from overseer.core import actions
    from overseer.core.context import Actor

    clock = FakeClock()
    policy = CompiledPolicy(Policy(limits={"circuit_breaker": 3}))
    history = History(tmp_path / "h.sqlite3", clock)
    bus = EventBus(clock)
    seen = []
    bus.subscribe(seen.append)
    attempt(history, 1, "promoted", at=clock.now())
    for n, status in enumerate(["failed", "denied", "rolled_back"], 2):  # a denial is not a failure
        clock.advance(60)
        attempt(history, n, status, at=clock.now())
    assert trip_breaker_if_needed(history, bus, policy, "proj") is None
    clock.advance(60)
    attempt(history, 5, "failed", at=clock.now())
    reason = trip_breaker_if_needed(history, bus, policy, "proj")
    assert reason and "3 consecutive failed or rolled-back attempts" in reason
    paused = history.get_control("paused")
    assert paused["user"] == BREAKER and paused["reason"] == reason
    assert [e.kind for e in seen] == ["CircuitBreakerTripped"]
    history.close()

    history = History(tmp_path / "h.sqlite3", clock)  # a restart: still paused
    assert history.get_control("paused")["user"] == BREAKER
    clock.advance(60)
    actions.set_paused(history, bus, Actor("alice", 1000), False)
    assert consecutive_failures(history, "proj") == []  # counted afresh from the resume
    assert trip_breaker_if_needed(history, bus, policy, "proj") is None
    for n in (6, 7, 8):
        clock.advance(60)
        attempt(history, n, "failed", at=clock.now())
    assert trip_breaker_if_needed(history, bus, policy, "proj")


def test_the_circuit_breaker_can_be_off(tmp_path):
    clock = FakeClock()
    history = History(tmp_path / "h.sqlite3", clock)
    for n in range(10):
        clock.advance(1)
        attempt(history, n, "failed", at=clock.now())
    policy = CompiledPolicy(Policy(limits={"circuit_breaker": 0}))
    assert trip_breaker_if_needed(history, EventBus(clock), policy, "proj") is None


# -- secrets --------------------------------------------------------------------------------


def test_the_redactor():
    redactor = Redactor(
        ["*TOKEN*", "AWS_*"],
        {
            "GITHUB_TOKEN": "ghp_abcdef123456",
            "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG",
            "HOME": "/root",
            "SHORT_TOKEN": "abc",
        },
    )
    text = "token=ghp_abcdef123456 key=wJalrXUtnFEMI/K7MDENG home=/root short=abc"
    assert (
        redactor.text(text)
        == "token=[secret GITHUB_TOKEN] key=[secret AWS_SECRET_ACCESS_KEY] home=/root short=abc"
    )
    assert redactor.value({"a": ["x ghp_abcdef123456"], "n": 1}) == {
        "a": ["x [secret GITHUB_TOKEN]"],
        "n": 1,
    }


def test_a_secret_files_contents_never_reach_the_history_or_the_output(tmp_path):
    """A model edits `.env` (next to a secret): denied as a protected path, and its diff — whose
    context lines are the secret — is recorded and shown without them."""
    import json

    from support.chat_server import Answer, ChatServer
    from support.helpers import Harness, init_repo, overseer

    secret = "sk_live_9d8e7f6a5b4c3d2e1f0a"
    repo = init_repo(
        tmp_path / "proj",
        {
            "pkg/__init__.py": "",
            "pkg/util.py": "import json\n\n\ndef double(x):\n    return x * 2\n",
            ".env": f"API_KEY={secret}\nDEBUG=0\n",
            "tests/test_util.py": "from pkg.util import double\n\n\n"
            "def test_double():\n    assert double(2) == 4\n",
        },
    )
    reply = {
        "target_file": ".env",
        "change_type": "quality",
        "risk_level": "low",
        "impact": "quieter",
        "rationale": "debug off is the default anyway",
        "edits": [{"search": "DEBUG=0\n", "replace": "DEBUG=1\n"}],
    }
    with ChatServer(default=Answer(json.dumps(reply))) as server:
        h = Harness(tmp_path, repo, policy="autonomy: full\n", ruff_select=["F401"])
        h._with_generators([server.generator(retries=0)])
        [attempt] = h.cycle(require_approval=False).attempts
        h.close()
        shown = overseer("show", attempt["improvement_id"], "--state-dir", str(h.state_dir))
    assert attempt["status"] == "denied"
    assert "touches protected path .env" in attempt["failure_reason"]
    assert "[the change to .env is not shown: it matches secrets.files" in attempt["generated_code"]
    stored = b"".join(p.read_bytes() for p in h.state_dir.glob("history.sqlite3*"))
    assert secret.encode() not in stored  # the reply (needed to replay) is kept, not the file
    assert shown.returncode == 0 and secret not in shown.stdout + shown.stderr
    assert ".env is not shown" in shown.stdout


@pytest.mark.usefixtures("warm_baseline")
def test_changing_the_autonomy_level_is_audited(tmp_path, repo):
    from support.helpers import Harness, rows

    first = Harness(tmp_path, repo, policy="autonomy: supervised\n", ruff_select=["F"])
    first.cycle(dry_run=True)
    first.close()
    second = Harness(tmp_path, repo, policy="autonomy: limited\n", ruff_select=["F"])
    second.cycle(dry_run=True)
    second.close()
    import json

    audits = [e for e in rows(tmp_path / "state", "phase_events") if e["kind"] == "AutonomyChanged"]
    details = [json.loads(a["detail"]) for a in audits]
    assert [(d["before"], d["after"]) for d in details] == [
        (None, "supervised"),
        ("supervised", "limited"),
    ]
    assert details[1]["policy"].endswith("policy.yaml")


@pytest.mark.usefixtures("warm_baseline")
def test_policy_explain_shows_the_facts_the_reasons_and_todays_verdict(tmp_path, repo):
    import json

    from support.helpers import overseer

    state = str(tmp_path / "state")
    overseer("run", "--once", "--target", str(repo), "--state-dir", state)
    [row] = json.loads(overseer("history", "--json", "--state-dir", state).stdout)
    explained = overseer("policy", "explain", row["improvement_id"][:8], "--state-dir", state)
    assert explained.returncode == 0, explained.stderr
    assert "needs_approval, risk low" in explained.stdout
    assert "finding            F401" in explained.stdout
    assert "· autonomy supervised: every promotion is approved" in explained.stdout
    assert "— the same." in explained.stdout
    (tmp_path / "strict.yaml").write_text(
        "autonomy: full\nrules:\n  - name: no-util\n    when: {paths: ['pkg/util.py']}\n    verdict: deny\n    reason: frozen module\n"
    )
    (tmp_path / "c.yaml").write_text(f"policy: {tmp_path / 'strict.yaml'}\n")
    again = overseer(
        "policy",
        "explain",
        row["improvement_id"],
        "--state-dir",
        state,
        "--config",
        str(tmp_path / "c.yaml"),
    )
    assert "says: deny, risk low — different:" in again.stdout
    assert "rule no-util: frozen module" in again.stdout
    as_json = json.loads(
        overseer("policy", "explain", row["improvement_id"], "--json", "--state-dir", state).stdout
    )
    assert (
        as_json["facts"]["paths"] == ["pkg/util.py"]
        and as_json["verdict"]["decision"] == "needs_approval"
    )


def test_failing_cycles_trip_the_breaker_and_a_paused_target_runs_no_real_cycle(tmp_path):
    from support.helpers import Harness, init_repo, overseer

    # Every candidate here breaks a test (the module re-exports what ruff removes).
    files = {
        "pkg/__init__.py": "",
        "pkg/util.py": "import json\nimport os\n\n\ndef double(x):\n    return x * 2\n",
        "tests/test_util.py": "from pkg import util\n\n\ndef test_reexports():\n    assert util.json and util.os\n",
    }
    repo = init_repo(tmp_path / "proj", files)
    h = Harness(
        tmp_path,
        repo,
        policy="autonomy: full\nlimits: {circuit_breaker: 1}\n",
        ruff_select=["F401"],
    )
    [attempt] = h.cycle().attempts
    assert attempt["status"] == "failed"
    paused = h.history.get_control("paused")
    assert paused and paused["user"] == "overseer (circuit breaker)"
    assert attempt["improvement_id"][:8] in paused["reason"]
    assert "CircuitBreakerTripped" in h.kinds()
    h.close()
    out = overseer(
        "run",
        "--once",
        "--target",
        str(repo),
        "--state-dir",
        str(tmp_path / "state"),
        "--no-dry-run",
    )
    assert out.returncode == 1 and "overseer is paused (by overseer (circuit breaker)" in out.stderr


# -- the one test edit a feature may make ------------------------------------------------------

XFAIL_TEST = """import pytest

from pkg.calc import divide, power


def test_add():
    assert 1 + 1 == 2


@pytest.mark.xfail(reason="division is missing")
def test_divide():
    assert divide(6, 3) == 2


@pytest.mark.xfail(reason="powers are missing")
def test_power():
    assert power(2, 3) == 8
"""
CALC = "def divide(a, b):\n    raise NotImplementedError\n"
IMPLEMENTED = FileChange("pkg/calc.py", CALC, "def divide(a, b):\n    return a / b\n")


def unmarked(test: str, source: str = XFAIL_TEST) -> str:
    from overseer.core.analyze.features import without_xfail_mark

    after = without_xfail_mark(source, test)
    assert after is not None and after != source
    return after


def feature_facts(*changes: FileChange, kind="xfail_test", change_type="feature"):
    from overseer.core.analyze.findings import Finding
    from overseer.core.generate.candidate import Candidate
    from overseer.core.safety.validate import facts_of

    details = (
        {"test": "tests.test_calc::test_divide", "function": "test_divide"}
        if kind == "xfail_test"
        else {"function": "divide"}
    )
    finding = Finding(
        kind=kind,
        area="features",
        change_type="feature",
        file="tests/test_calc.py" if kind == "xfail_test" else "pkg/calc.py",
        message="",
        details=details,
    )
    candidate = Candidate(
        generator="llm",
        finding=finding,
        change_type=change_type,
        stated_risk=Risk.LOW,
        summary="",
        impact="",
        rationale="",
        changes=list(changes),
    )
    return facts_of(candidate, "features", 0.5)


def test_a_feature_may_remove_the_xfail_mark_of_its_own_test_and_nothing_else():
    own = FileChange("tests/test_calc.py", XFAIL_TEST, unmarked("test_divide"))
    facts_ = feature_facts(IMPLEMENTED, own)
    assert facts_.oracle == () and facts_.test_edits == ()
    assert facts_.xfail_removed == ("tests/test_calc.py::test_divide",)
    verdict = CompiledPolicy(Policy(autonomy="full")).judge(facts_, require_approval=False)
    assert verdict.decision is Decision.ALLOW and verdict.risk is Risk.MEDIUM


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (
            unmarked("test_power"),
            "removes the xfail mark of tests/test_calc.py::test_power, not of the test this "
            "feature is for (tests/test_calc.py::test_divide)",
        ),
        (
            unmarked("test_power", unmarked("test_divide")),
            "removes the xfail mark of tests/test_calc.py::test_power, not of the test",
        ),
        (
            unmarked("test_divide").replace("== 2", "== 2.0"),
            "edits test code in tests/test_calc.py beyond removing the xfail mark of "
            "tests/test_calc.py::test_divide",
        ),
        (
            unmarked("test_divide").replace(
                "def test_divide", "@pytest.mark.skip\ndef test_divide"
            ),
            "edits test code in tests/test_calc.py beyond removing the xfail mark",
        ),
        (
            XFAIL_TEST + "\n\ndef test_more():\n    assert True\n",
            "edits test code in tests/test_calc.py beyond removing",
        ),
    ],
)
def test_every_other_test_edit_of_a_feature_is_denied(after, expected):
    facts_ = feature_facts(IMPLEMENTED, FileChange("tests/test_calc.py", XFAIL_TEST, after))
    assert any(expected in r for r in facts_.test_edits), facts_.test_edits
    for autonomy in ("supervised", "limited", "full"):
        policy = Policy(autonomy=autonomy, full_max_auto_risk="high", areas=["features"])
        verdict = CompiledPolicy(policy).judge(facts_, require_approval=False)
        assert verdict.decision is Decision.DENY, autonomy


def test_a_feature_for_an_xfail_test_must_remove_its_mark():
    facts_ = feature_facts(IMPLEMENTED)
    assert facts_.test_edits == (
        "does not remove the xfail mark of tests/test_calc.py::test_divide: a feature for an "
        "xfail test is kept only when that test passes without its mark",
    )


def test_other_features_edit_no_test_at_all():
    facts_ = feature_facts(
        IMPLEMENTED,
        FileChange("tests/test_calc.py", XFAIL_TEST, unmarked("test_divide")),
        kind="not_implemented",
    )
    assert any(
        "removes the xfail mark of tests/test_calc.py::test_divide" in r for r in facts_.test_edits
    )
    assert any("removes the xfail mark" in r for r in facts_.oracle)
    plain = feature_facts(
        IMPLEMENTED, FileChange("tests/conftest.py", None, "X = 1\n"), kind="todo"
    )
    assert plain.test_edits == (
        "edits test code in tests/conftest.py: a feature change may edit a test only to remove "
        "the xfail mark of the test it is for",
    )


def test_a_feature_is_judged_as_one_whatever_its_generator_calls_it():
    facts_ = feature_facts(
        IMPLEMENTED,
        FileChange("tests/test_calc.py", XFAIL_TEST, unmarked("test_power")),
        change_type="quality",
    )
    assert facts_.change_type == "feature"
    assert any("not of the test this feature is for" in r for r in facts_.test_edits)


def test_removing_an_xfail_mark_by_itself_is_an_oracle_change():
    """Only a feature change for that very test may remove a mark; any other change that does
    is held for a human like any weakening, and a swap for a skip is seen too."""
    alone = examine(FileChange("tests/test_calc.py", XFAIL_TEST, unmarked("test_divide")))
    assert alone == [
        "removes the xfail mark of tests/test_calc.py::test_divide: a mark may go only with a "
        "feature change for that very test, which must then pass"
    ]
    swapped = XFAIL_TEST.replace(
        '@pytest.mark.xfail(reason="powers are missing")', "@pytest.mark.skip"
    )
    assert any(
        "removes the xfail mark of tests/test_calc.py::test_power" in r
        for r in examine(FileChange("tests/test_calc.py", XFAIL_TEST, swapped))
    )
    verdict = judge(Policy(autonomy="full", full_max_auto_risk="high"), oracle=tuple(alone))
    assert verdict.decision is Decision.NEEDS_APPROVAL and verdict.risk is Risk.HIGH
