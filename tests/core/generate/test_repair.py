"""Repair rounds (core/generate/repair.py) through whole cycles: the scripted OpenAI-compatible
server answers each round, on real repositories made in tmp_path."""

from __future__ import annotations

import json

import pytest
import yaml

from support.adversarial import LEVELS
from support.chat_server import Answer, ChatServer
from support.helpers import PYPROJECT, UTIL, Harness, git, init_repo, overseer, rows

GOOD = {
    "target_file": "pkg/util.py",
    "change_type": "quality",
    "risk_level": "low",
    "impact": "removes the unused imports",
    "rationale": "json and os are never used in pkg/util.py",
    "edits": [{"search": "import json\nimport os\n", "replace": ""}],
}
NOT_FOUND = {**GOOD, "edits": [{"search": "import numpy\n", "replace": ""}]}
# Removes the imports, and breaks double(): both tests of the sample fail by name.
BREAKS = {
    **GOOD,
    "edits": [*GOOD["edits"], {"search": "return x * 2", "replace": "return x * 3"}],
}
UNREADABLE = "I think you should refactor everything."


def harness(tmp_path, repo, server, policy="autonomy: limited\n", target=None, **llm):
    return Harness(
        tmp_path, repo, policy=policy, ruff_select=["F"], flaky_reruns=0, **(target or {})
    )._with_generators(
        [
            {
                "llm": {
                    "backend": "openai",
                    "base_url": server.url,
                    "model": "coder",
                    "timeout": 5,
                    "retries": 0,
                    **llm,
                }
            }
        ]
    )


def prompts(server: ChatServer) -> list[str]:
    return [r["messages"][1]["content"] for r in server.requests]


def verdicts(attempt) -> list[tuple[str, str]]:
    return [(r["verdict"]["phase"], r["verdict"]["outcome"]) for r in attempt["rounds"]]


@pytest.mark.usefixtures("warm_baseline")
def test_a_search_text_not_found_is_repaired_in_round_2_and_promoted(tmp_path, repo):
    with ChatServer(answers=[Answer(json.dumps(NOT_FOUND)), Answer(json.dumps(GOOD))]) as server:
        h = harness(tmp_path, repo, server)
        [attempt] = h.cycle().attempts
        h.close()
        sent = prompts(server)
        seeds = [r["seed"] for r in server.requests]
    assert attempt["status"] == "promoted", attempt["failure_reason"]
    assert "import" not in (repo / "pkg/util.py").read_text()
    assert attempt["repair_rounds_used"] == 1
    assert verdicts(attempt) == [("SAFETY", "denied"), ("EVALUATE", "passed")]
    first, second = attempt["rounds"]
    assert "its search text does not occur in the file" in first["verdict"]["reason"]
    # Round 2 is shown what failed and its own reply, after the code it is to edit.
    assert "Round 2 of 3" in sent[1] and "SAFETY failed" in sent[1]
    assert "edit 1 on pkg/util.py: its search text does not occur in the file" in sent[1]
    assert "import numpy" in sent[1] and "import numpy" not in sent[0]
    assert sent[1].index("File pkg/util.py") < sent[1].index("Round 2 of 3")
    assert second["shown"]["phase"] == "SAFETY"
    # Replayable: each round's prompt as it was sent, and its seed.
    assert [r["prompt"] for r in attempt["rounds"]] == sent
    assert [r["replies"][0]["seed"] for r in attempt["rounds"]] == seeds == [42, 43]
    assert second["replies"][0]["raw"] == json.dumps(GOOD)
    assert attempt["generation"]["prompt"] == sent[1]  # what produced the change
    [asked] = [e for e in h.events if e.kind == "RepairRequested"]
    assert (asked.round, asked.rounds, asked.phase) == (2, 3, "SAFETY")
    assert "asking the model again (round 2 of 3) after SAFETY failed" in asked.describe()
    # LEARN knows the kept change needed one repair round; stats and show say so.
    [outcome] = rows(tmp_path / "state", "outcomes")
    assert outcome["kept"] == 1 and outcome["repair_rounds_used"] == 1
    state = str(tmp_path / "state")
    stats = overseer("stats", "--state-dir", state)
    assert "Repair rounds a kept change needed" in stats.stdout, stats.stderr
    assert "llm        1 round(s): 1" in stats.stdout
    assert json.loads(overseer("stats", "--json", "--state-dir", state).stdout)[
        "repair_rounds"
    ] == {"llm": {"1": 1}}
    shown = overseer("show", attempt["improvement_id"], "--state-dir", state).stdout
    assert "Rounds (2;" in shown
    assert "round 1  SAFETY denied: denied: " not in shown  # the reason, once
    assert "round 1  SAFETY denied: Your change could not be applied: edit 1" in shown
    assert "round 2  EVALUATE passed  (1 reply, " in shown
    as_json = json.loads(
        overseer("show", attempt["improvement_id"], "--json", "--state-dir", state).stdout
    )
    assert [r["prompt"] for r in as_json["rounds"]] == sent


def test_a_failing_test_is_shown_redacted_and_repaired_in_round_2(tmp_path, monkeypatch):
    secret = "tok-5ecret-value-4242"
    monkeypatch.setenv("SERVICE_TOKEN", secret)
    repo = init_repo(
        tmp_path / "proj",
        {
            "pyproject.toml": PYPROJECT,
            "pkg/__init__.py": "",
            "pkg/util.py": UTIL,
            "tests/test_util.py": "import os\n\nfrom pkg.util import double\n\n\n"
            "def test_double():\n"
            "    token = os.environ['SERVICE_TOKEN']\n"
            "    assert double(2) == 4, f'double is wrong with {token}'\n",
        },
    )
    with ChatServer(answers=[Answer(json.dumps(BREAKS)), Answer(json.dumps(GOOD))]) as server:
        h = harness(tmp_path, repo, server, target={"pass_env": ["SERVICE_TOKEN"]})
        [attempt] = h.cycle().attempts
        h.close()
        sent = prompts(server)
    assert attempt["status"] == "promoted", attempt["failure_reason"]
    assert verdicts(attempt) == [("EVALUATE", "failed"), ("EVALUATE", "passed")]
    assert "test_double" in sent[1] and "EVALUATE failed" in sent[1]
    assert "double is wrong with [secret SERVICE_TOKEN]" in sent[1]
    assert secret not in json.dumps(server.requests)
    assert secret not in json.dumps(rows(tmp_path / "state"))
    # Re-deployed afresh: the promoted commit holds round 2's change only.
    assert (repo / "pkg/util.py").read_text() == "\n\ndef double(x):\n    return x * 2\n"
    assert git(repo, "rev-parse", "HEAD") == attempt["git_commit_hash"]
    assert attempt["evaluation"]["passed"] and attempt["tests_failed"] == 0
    assert git(repo, "branch", "--list", "overseer/*") == ""
    # One attempt, one outcome: counted once (the breaker counts outcomes, not rounds).
    [outcome] = rows(tmp_path / "state", "outcomes")
    assert outcome["kept"] == 1 and outcome["repair_rounds_used"] == 1


@pytest.mark.usefixtures("warm_baseline")
def test_a_model_that_never_repairs_fails_after_its_rounds_each_recorded(tmp_path, repo):
    with ChatServer(default=Answer(UNREADABLE)) as server:
        h = harness(tmp_path, repo, server)
        [attempt] = h.cycle().attempts
        h.close()
        sent = prompts(server)
    assert attempt["status"] == "failed"
    assert attempt["failure_reason"].endswith("(in round 3 of 3; every round is recorded)")
    assert len(sent) == 3 and attempt["repair_rounds_used"] == 2
    assert verdicts(attempt) == [("GENERATE", "failed")] * 3
    assert [r["replies"][0]["raw"] for r in attempt["rounds"]] == [UNREADABLE] * 3
    assert [r["prompt"] for r in attempt["rounds"]] == sent
    assert "Your answer could not be read: the reply holds no JSON object" in sent[1]
    assert "Round 3 of 3" in sent[2]
    assert len([e for e in h.events if e.kind == "RepairRequested"]) == 2
    [outcome] = rows(tmp_path / "state", "outcomes")
    assert outcome["kept"] == 0 and outcome["repair_rounds_used"] == 2
    assert "import json" in (repo / "pkg/util.py").read_text()


@pytest.mark.usefixtures("warm_baseline")
def test_a_repaired_candidate_that_weakens_a_test_is_still_stopped_by_the_oracle_guard(
    tmp_path, repo
):
    """Round 1 breaks the tests; round 2 "repairs" that by weakening the failing tests. The
    guard judges round 2 as it judges any change: at full autonomy it does not promote."""
    test_file = "tests/test_util.py"
    weakens = {
        **BREAKS,
        "edits": [
            *BREAKS["edits"],
            {"file": test_file, "search": "assert double(2) == 4", "replace": "assert double(2)"},
            {"file": test_file, "search": "double(-3) == -6", "replace": "double(-3)"},
        ],
    }
    level = dict(LEVELS)["full/high"]
    answers = [Answer(json.dumps(BREAKS)), Answer(json.dumps(weakens))]
    with ChatServer(answers=answers) as server:
        h = harness(tmp_path, repo, server, policy=yaml.safe_dump(level), repair_rounds=1)
        [attempt] = h.cycle().attempts
        h.close()
    # Held for a human at high risk, as the same change in one round would be.
    assert attempt["status"] == "awaiting_approval" and attempt["risk_level"] == "high"
    assert any("oracle: weakens 2 assertion(s)" in r for r in attempt["risk_reasons"])
    assert attempt["rounds"][1]["verdict"]["outcome"] == "passed"  # its tests, weakened
    assert len(attempt["rounds"]) == 2 and attempt["rounds"][0]["verdict"]["phase"] == "EVALUATE"
    assert "return x * 3" not in (repo / "pkg/util.py").read_text()


@pytest.mark.usefixtures("warm_baseline")
def test_repair_rounds_0_is_one_round(tmp_path, repo):
    with ChatServer(default=Answer(json.dumps(NOT_FOUND))) as server:
        h = harness(tmp_path, repo, server, repair_rounds=0)
        [attempt] = h.cycle().attempts
        h.close()
        asked = len(server.requests)
    assert attempt["status"] == "denied" and asked == 1
    assert "round" not in attempt["failure_reason"]
    assert attempt["repair_rounds_used"] == 0 and verdicts(attempt) == [("SAFETY", "denied")]
    assert "RepairRequested" not in h.kinds()


@pytest.mark.usefixtures("warm_baseline")
def test_the_token_budget_covers_every_round(tmp_path, repo):
    """Round 1 fits the budget; round 2 (its prompt longer by the failure) would not: it is not
    sent, and the reason says so."""
    budget = 2500  # max_new_tokens 2000 + about 500 of prompt: one round's, not two
    with ChatServer(default=Answer(json.dumps(NOT_FOUND))) as server:
        h = harness(tmp_path, repo, server, max_new_tokens=2000, token_budget=budget)
        [attempt] = h.cycle().attempts
        h.close()
        asked = len(server.requests)
    first, second = attempt["rounds"]
    assert (
        first["prompt_tokens"] + 2000 <= budget < first["tokens"] + second["prompt_tokens"] + 2000
    )
    assert asked == 1 and attempt["status"] == "failed"
    assert second["replies"] == [] and second["not_sent"] in attempt["failure_reason"]
    assert attempt["failure_reason"].startswith(
        "generation failed: round 2 was not sent: it could take "
    )
    assert (
        f"of its token budget of {budget:,}; round 1 had failed at SAFETY"
        in (attempt["failure_reason"])
    )
    assert first["tokens"] == first["prompt_tokens"] + 20  # the server's usage: 20 tokens


SHAPES = '''"""Shapes."""


def describe(width, height):
    if width == height:
        return "square"
    return "oblong"
'''
NEW_TEST = "tests/test_shapes_coverage.py"


def new_test(expected: str) -> Answer:
    text = f'from geo.shapes import describe\n\n\ndef test_square():\n    assert describe(2, 2) == "{expected}"\n'
    return Answer(
        json.dumps(
            {
                "target_file": NEW_TEST,
                "change_type": "test",
                "risk_level": "low",
                "impact": "describe is tested",
                "rationale": "no test ran describe",
                "edits": [{"file": NEW_TEST, "search": "", "replace": text}],
            }
        )
    )


def test_a_failing_test_the_change_added_is_called_new_not_one_that_passed_before(tmp_path):
    repo = init_repo(
        tmp_path / "proj",
        {
            "pyproject.toml": PYPROJECT,
            "src/geo/__init__.py": "",
            "src/geo/shapes.py": SHAPES,
            "tests/test_shapes.py": "from geo.shapes import describe\n\n\n"
            "def test_oblong():\n    assert describe(3, 1) == 'oblong'\n",
        },
    )
    with ChatServer(answers=[new_test("round"), new_test("square")]) as server:
        h = harness(
            tmp_path,
            repo,
            server,
            policy="autonomy: full\n",
            target={"new_tests": {"enabled": True, "reliability_runs": 2}},
            repair_rounds=1,
        )
        [attempt] = h.cycle(area="quality", max_changes=1).attempts
        h.close()
        sent = prompts(server)
    assert attempt["finding_kind"] == "uncovered_code"
    assert verdicts(attempt) == [("EVALUATE", "failed"), ("EVALUATE", "passed")]
    said = attempt["rounds"][0]["verdict"]["reason"]
    assert "1 new test(s) the change added fail: tests.test_shapes_coverage::test_square" in said
    assert "- tests.test_shapes_coverage::test_square (a new test your change added): " in sent[1]
    assert "passed before" not in said and "passed before" not in sent[1]
    assert attempt["status"] == "promoted", attempt["failure_reason"]
