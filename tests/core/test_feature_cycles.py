"""The `features` area through whole cycles, with a scripted model server: an xfail test made
to pass by a real implementation is promoted with its mark removed, and the approval view shows
that test; a change that leaves the test failing, breaks another test, or removes the mark of a
test it is not for is refused; a repository without features says so."""

from __future__ import annotations

import json

import pytest

from support.chat_server import Answer, ChatServer
from support.helpers import Harness, git, init_repo, overseer

OPS = '''"""Arithmetic."""


def add(a, b):
    return a + b


def divide(a, b):
    raise NotImplementedError("divide is not written yet")


def power(a, b):
    raise NotImplementedError("power is not written yet")
'''
TESTS = """import pytest

from calc.ops import add, divide, power


def test_add():
    assert add(2, 3) == 5


@pytest.mark.xfail(reason="divide is not written yet")
def test_divide():
    assert divide(6, 3) == 2


@pytest.mark.xfail(reason="power is not written yet")
def test_power():
    assert power(2, 3) == 8
"""
FILES = {
    "pyproject.toml": "[project]\nname = 'calc'\nversion = '0'\n",
    "src/calc/__init__.py": "",
    "src/calc/ops.py": OPS,
    "tests/test_ops.py": TESTS,
    ".gitignore": "__pycache__/\n",
}
DIVIDE = "tests.test_ops::test_divide"
MARK = '@pytest.mark.xfail(reason="divide is not written yet")\n'
OTHER_MARK = '@pytest.mark.xfail(reason="power is not written yet")\n'


def edit(search: str, replace: str, file: str = "src/calc/ops.py") -> dict[str, str]:
    return {"file": file, "search": search, "replace": replace}


IMPLEMENTS = edit(
    '    raise NotImplementedError("divide is not written yet")\n', "    return a / b\n"
)


def reply(*edits: dict[str, str], impact: str = "divide works") -> Answer:
    return Answer(
        json.dumps(
            {
                "target_file": "src/calc/ops.py",
                "change_type": "feature",
                "risk_level": "low",
                "impact": impact,
                "rationale": "the xfail test says what divide must do",
                "edits": list(edits),
            }
        )
    )


def cycle(tmp_path, server, policy="autonomy: full\n"):
    """One cycle with --area features on a new calc repository; the harness, to close."""
    repo = init_repo(tmp_path / "proj", FILES)
    h = Harness(
        tmp_path,
        repo,
        policy=policy,
        ruff_select=["F"],
        flaky_reruns=0,
        watch_after_promotion=False,  # what a promotion is checked by is not this module's
    )
    # One round: each test here is about one candidate's gates (repair rounds: test_repair.py).
    h._with_generators([server.generator(timeout=5, retries=0, repair_rounds=0)])
    return repo, h, h.cycle(area="features")


def test_an_xfail_test_made_to_pass_is_promoted_with_its_mark_removed(tmp_path):
    with ChatServer(answers=[reply(IMPLEMENTS)]) as server:
        repo, h, result = cycle(tmp_path, server)
        h.close()
        [request] = server.requests
    [attempt] = result.attempts
    assert attempt["status"] == "promoted", attempt["failure_reason"]
    assert attempt["finding_kind"] == "xfail_test" and attempt["change_type"] == "feature"
    assert attempt["risk_level"] == "medium"
    assert "rule features: adds behaviour" in " ".join(attempt["risk_reasons"])
    assert attempt["evaluation"]["required"] == {DIVIDE: "passed"}
    assert attempt["policy_facts"]["xfail_removed"] == ["tests/test_ops.py::test_divide"]
    # On the branch: the implementation, and the test without its mark; the other mark stays.
    assert "return a / b" in (repo / "src/calc/ops.py").read_text()
    tests = (repo / "tests/test_ops.py").read_text()
    assert tests == TESTS.replace(MARK, "")
    assert git(repo, "log", "-1", "--format=%s") == "Autonomous improvement: feature: divide works"
    assert git(repo, "status", "--porcelain") == ""
    # What the model was asked: the test, its reason, and the code it exercises.
    prompt = request["messages"][1]["content"]
    assert f"Finding: xfail_test in tests/test_ops.py: {DIVIDE} is marked xfail" in prompt
    assert "Do not edit any test file" in prompt
    assert "Code under test — File src/calc/ops.py" in prompt

    # `overseer stats` counts features like the other kinds.
    state = str(tmp_path / "state")
    stats = overseer("stats", "--state-dir", state)
    assert stats.returncode == 0, stats.stderr
    assert "feature      medium" in stats.stdout
    assert "By area: features 1 attempt(s), 1 kept" in stats.stdout
    data = json.loads(overseer("stats", "--json", "--state-dir", state).stdout)
    assert data["areas"] == [{"area": "features", "attempts": 1, "kept": 1, "rollbacks": 0}]
    [pattern] = data["patterns"]
    assert (pattern["change_type"], pattern["attempts"], pattern["kept"]) == ("feature", 1, 1)


def test_the_approval_view_always_shows_the_formerly_failing_test(tmp_path):
    with ChatServer(answers=[reply(IMPLEMENTS)]) as server:
        repo, h, result = cycle(tmp_path, server, policy="autonomy: supervised\n")
        h.close()
    [attempt] = result.attempts
    assert attempt["status"] == "awaiting_approval", attempt["failure_reason"]
    iid, state = attempt["improvement_id"], str(tmp_path / "state")
    shown = overseer("show", iid[:8], "--state-dir", state)
    assert shown.returncode == 0, shown.stderr
    assert (
        f"  feature test  {DIVIDE}: xfail before (divide is not written yet), passed now; "
        "its xfail mark removed by this change"
    ) in shown.stdout
    data = json.loads(overseer("show", iid, "--json", "--state-dir", state).stdout)
    feature = data["feature"]
    assert feature["tests"] == [DIVIDE] and feature["before"] == "xfailed"
    assert feature["after"] == {DIVIDE: "passed"} and feature["mark_removed"] is True
    assert feature["reason"] == "divide is not written yet"

    approved = overseer("approve", iid[:8], "--state-dir", state, "--reason", "reviewed")
    assert approved.returncode == 0, approved.stderr
    assert (repo / "tests/test_ops.py").read_text() == TESTS.replace(MARK, "")


@pytest.mark.parametrize("model_removes_the_mark", [False, True])
def test_a_candidate_that_leaves_the_test_failing_is_refused(tmp_path, model_removes_the_mark):
    """Whoever removes the mark — overseer, or the model itself — the test must then pass."""
    wrong = edit(
        '    raise NotImplementedError("divide is not written yet")\n', "    return a * b\n"
    )
    edits = [wrong] + ([edit(MARK, "", "tests/test_ops.py")] if model_removes_the_mark else [])
    with ChatServer(answers=[reply(*edits)]) as server:
        repo, h, result = cycle(tmp_path, server)
        h.close()
    [attempt] = result.attempts
    assert attempt["status"] == "failed"
    assert (
        "the test(s) this feature is for did not pass without their xfail mark: "
        f"{DIVIDE} (failed)" in attempt["failure_reason"]
    )
    assert attempt["policy_facts"]["test_edits"] == []  # the mark went, nothing else
    assert (repo / "tests/test_ops.py").read_text() == TESTS
    assert (repo / "src/calc/ops.py").read_text() == OPS


def test_a_candidate_that_passes_the_xfail_test_but_breaks_another_is_refused(tmp_path):
    breaks = edit("    return a + b\n", "    return a - b\n")
    with ChatServer(answers=[reply(IMPLEMENTS, breaks)]) as server:
        repo, h, result = cycle(tmp_path, server)
        h.close()
    [attempt] = result.attempts
    assert attempt["status"] == "failed"
    assert attempt["evaluation"]["required"] == {DIVIDE: "passed"}
    assert (
        "1 test(s) fail that passed before: tests.test_ops::test_add" in attempt["failure_reason"]
    )
    assert (repo / "src/calc/ops.py").read_text() == OPS


def test_a_candidate_that_removes_another_tests_mark_is_refused_by_the_oracle_guard(tmp_path):
    """Denied outright, at full autonomy with every risk allowed; and the other xfail test in
    the same file is a finding of its own, still open to the next cycle."""
    other = edit(OTHER_MARK, "", "tests/test_ops.py")
    with ChatServer(answers=[reply(IMPLEMENTS, other), Answer("no idea")]) as server:
        repo, h, result = cycle(tmp_path, server, "autonomy: full\nfull_max_auto_risk: high\n")
        [attempt] = result.attempts
        assert attempt["status"] == "denied"
        assert (
            "oracle: a feature change removes the xfail mark of tests/test_ops.py::test_power, "
            "not of the test this feature is for (tests/test_ops.py::test_divide)"
        ) in attempt["failure_reason"]
        assert attempt["evaluation"] is None  # never deployed nor run
        assert (repo / "tests/test_ops.py").read_text() == TESTS
        [next_attempt] = h.cycle(area="features").attempts
        h.close()
    assert next_attempt["finding"]["details"]["function"] == "test_power"


def test_a_repository_without_features_says_so(tmp_path):
    """Through the real command line; what is near a feature but not one is not found: an
    xfail mark without a reason, a TODO that says nothing, a NotImplementedError no test
    reaches."""
    repo = init_repo(
        tmp_path / "proj",
        {
            "pkg/__init__.py": "",
            "pkg/util.py": "def double(x):\n    return x * 2  # TODO: later\n\n\n"
            "def later():\n    raise NotImplementedError\n",
            "tests/test_util.py": "import pytest\n\nfrom pkg.util import double\n\n\n"
            "def test_double():\n    assert double(2) == 4\n\n\n"
            "@pytest.mark.xfail\ndef test_someday():\n    assert double(1) == 3\n",
        },
    )
    out = overseer(
        "run",
        "--once",
        "--target",
        str(repo),
        "--area",
        "features",
        "--state-dir",
        str(tmp_path / "state"),
    )
    assert out.returncode == 0, out.stderr
    assert "ANALYZE" in out.stdout and ", 0 feature findings" in out.stdout
    assert (
        "finished (ok): nothing to improve in area features: no test marked xfail with a "
        "reason, no `raise NotImplementedError` reached by a test, no TODO/FIXME comment with "
        "a description next to code"
    ) in out.stdout
