"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1, and the llm
generator through whole cycles on a real repository."""

from __future__ import annotations

import json

import pytest

from overseer.base.clock import FakeClock
from overseer.config import OpenAISettings
from overseer.core.generate.health import RECHECK_SECONDS
from overseer.core.generate.llm import BackendError
from overseer.core.generate.llm.openai_backend import OpenAIBackend
from support.adversarial import LEVELS
from support.chat_server import Answer, ChatServer
from support.helpers import Harness, git, rows

GOOD = {
    "target_file": "pkg/util.py",
    "change_type": "quality",
    "risk_level": "low",
    "impact": "removes the unused imports",
    "rationale": "json and os are never used in pkg/util.py",
    "edits": [{"search": "import json\nimport os\n", "replace": ""}],
}


def settings(server: ChatServer, **kw) -> OpenAISettings:
    return OpenAISettings(
        **{
            "backend": "openai",
            "base_url": server.url,
            "model": "coder",
            "timeout": 2,
            "retries": 2,
            **kw,
        }
    )


def backend(server, environ=None, **kw) -> OpenAIBackend:
    return OpenAIBackend(settings(server, **kw), environ=environ or {}, sleep=lambda s: None)


def generate(b: OpenAIBackend, prompt: str = "fix it"):
    with b.session() as session:
        return session.generate(prompt, seed=7)


def test_a_chat_completion_and_what_was_sent():
    with ChatServer(answers=[Answer(json.dumps(GOOD))]) as server:
        b = backend(server, environ={"OPENAI_API_KEY": "sk-test-123456"})
        b.check()
        reply = generate(b)
        [request] = server.requests
    assert json.loads(reply.text) == GOOD and reply.tokens == 20
    assert request["model"] == "coder" and request["seed"] == 7
    assert request["temperature"] == 0.2 and request["max_tokens"] == 512
    assert request["messages"][1] == {"role": "user", "content": "fix it"}
    assert request["authorization"] == "Bearer sk-test-123456"
    assert b.identity() == {"backend": "openai", "endpoint": server.url, "model": "coder"}


def test_server_errors_are_retried_with_back_off():
    with ChatServer(
        answers=[Answer(status=500, body=b"{}"), Answer(status=503, body=b"{}"), Answer("ok")]
    ) as server:
        waits = []
        b = OpenAIBackend(settings(server), environ={}, sleep=waits.append)
        assert generate(b).text == "ok"
    assert waits == [1, 2]


def test_persistent_server_errors_fail_after_the_retries():
    with ChatServer(default=Answer(status=500, body=b'{"error": "boom"}')) as server:
        with pytest.raises(BackendError, match=r"failed 3 time\(s\): HTTP 500; HTTP 500; HTTP 500"):
            generate(backend(server))
        assert len(server.requests) == 3


def test_a_cancel_during_the_back_off_gives_up_without_another_request():
    import threading

    from overseer.core.plumbing.stop import CycleStopped

    cancel = threading.Event()
    with ChatServer(default=Answer(status=503, body=b"{}")) as server:
        # The stop arrives while the backend waits before its second try.
        b = OpenAIBackend(settings(server, retries=5), environ={}, sleep=lambda s: cancel.set())
        with b.session(cancel) as session:
            with pytest.raises(CycleStopped, match="cancelled while waiting for the model's"):
                session.generate("fix it", seed=7)
        assert len(server.requests) == 1


def test_a_client_error_is_not_retried():
    with ChatServer(default=Answer(status=400, body=b'{"error": "bad"}')) as server:
        with pytest.raises(BackendError, match="refused the request: HTTP 400"):
            generate(backend(server))
        assert len(server.requests) == 1


def test_a_silent_server_times_out():
    with ChatServer(default=Answer("late", delay=3)) as server:
        with pytest.raises(BackendError, match="failed 2 time"):
            generate(backend(server, retries=1))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>502 Bad Gateway</html>", "not JSON"),
        (b'{"object": "error"}', "not a chat completion"),
        (b'{"choices": []}', "not a chat completion"),
        (b'{"choices": [{"message": {"content": null}}]}', "not a chat completion"),
    ],
)
def test_garbage_bodies_are_an_error_not_a_crash(body, reason):
    with ChatServer(default=Answer(body=body)) as server:
        with pytest.raises(BackendError, match=reason):
            generate(backend(server))


def test_start_up_checks_say_what_is_wrong():
    with ChatServer(models=["other-model"]) as server:
        with pytest.raises(BackendError, match="does not serve model 'coder'"):
            backend(server).check()
    with ChatServer(models_status=401) as server:
        with pytest.raises(BackendError, match=r"refused us \(401\); is \$OPENAI_API_KEY set"):
            backend(server).check()
    unreachable = OpenAIBackend(
        OpenAISettings(backend="openai", base_url="http://127.0.0.1:9/v1", model="m", timeout=2),
        environ={},
    )
    with pytest.raises(BackendError, match="cannot reach http://127.0.0.1:9/v1"):
        unreachable.check()


# -- the llm generator through whole cycles --------------------------------------------------


def llm_harness(tmp_path, repo, server, policy="autonomy: limited\n", **llm):
    return Harness(tmp_path, repo, policy=policy, ruff_select=["F"])._with_generators(
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


@pytest.mark.usefixtures("warm_baseline")
def test_a_models_change_goes_through_safety_and_is_promoted(tmp_path, repo):
    with ChatServer(
        default=Answer("Here you go:\n```json\n" + json.dumps(GOOD) + "\n```")
    ) as server:
        h = llm_harness(tmp_path, repo, server)
        [attempt] = h.cycle().attempts
        h.close()
    assert attempt["status"] == "promoted", attempt["failure_reason"]
    assert attempt["generator"] == "llm"
    assert "import" not in (repo / "pkg/util.py").read_text()
    assert git(repo, "log", "-1", "--format=%s").startswith(
        "Autonomous improvement: quality: removes the unused imports"
    )
    generation = attempt["generation"]
    assert generation["model"] == {"backend": "openai", "endpoint": server.url, "model": "coder"}
    assert generation["settings"]["seed"] == 42 and generation["settings"]["temperature"] == 0.2
    assert "Finding: F401" in generation["prompt"] and "File pkg/util.py" in generation["prompt"]
    assert "import json" in generation["prompt"]
    assert generation["replies"][0]["raw"].startswith("Here you go:")


@pytest.mark.usefixtures("warm_baseline")
def test_an_unusable_reply_is_recorded_with_its_text_and_counts_as_a_failure(tmp_path, repo):
    with ChatServer(default=Answer("I think you should refactor everything.")) as server:
        h = llm_harness(tmp_path, repo, server)
        [attempt] = h.cycle().attempts
        h.close()
    assert attempt["status"] == "failed"
    assert (
        "no usable reply from the model: the reply holds no JSON object with `edits`"
        in attempt["failure_reason"]
    )
    assert attempt["generation"]["replies"][0]["raw"] == "I think you should refactor everything."
    [outcome] = rows(tmp_path / "state", "outcomes")
    assert outcome["kept"] == 0 and outcome["generator"] == "llm"


@pytest.mark.usefixtures("warm_baseline")
def test_an_edit_whose_search_text_is_not_in_the_file_is_denied_never_applied(tmp_path, repo):
    wrong = {**GOOD, "edits": [{"search": "import numpy\n", "replace": ""}]}
    with ChatServer(default=Answer(json.dumps(wrong))) as server:
        h = llm_harness(tmp_path, repo, server)
        [attempt] = h.cycle().attempts
        h.close()
    assert attempt["status"] == "denied"
    assert "its search text does not occur in the file" in attempt["failure_reason"]
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.usefixtures("warm_baseline")
def test_n_best_each_candidate_through_safety_the_best_goes_on(tmp_path, repo):
    ambiguous = {**GOOD, "edits": [{"search": "\n", "replace": ""}]}  # matches many times
    risky = {**GOOD, "risk_level": "high"}
    answers = [
        Answer(json.dumps(ambiguous)),
        Answer("no idea"),
        Answer(json.dumps(risky)),
        Answer(json.dumps(GOOD)),
    ]
    with ChatServer(answers=answers) as server:
        h = llm_harness(tmp_path, repo, server, candidates=4)
        [attempt] = h.cycle().attempts
        seeds = [r["seed"] for r in server.requests]
        h.close()
    assert seeds == [42, 43, 44, 45]
    assert attempt["status"] == "promoted" and attempt["risk_level"] == "low"
    considered = attempt["generation"]["candidates"]
    assert [c["decision"] for c in considered] == ["deny", "needs_approval", "allow"]
    assert [c["chosen"] for c in considered] == [False, False, True]
    assert attempt["generation"]["replies"][1]["error"].startswith("the reply holds no JSON")


def test_kept_changes_of_the_same_kind_become_examples(tmp_path):
    from support.helpers import SAMPLE, init_repo

    repo = init_repo(
        tmp_path / "proj", {**SAMPLE, "pkg/other.py": "import sys\n\n\ndef one():\n    return 1\n"}
    )
    other = {
        **GOOD,
        "target_file": "pkg/other.py",
        "edits": [{"search": "import sys\n", "replace": ""}],
    }
    with ChatServer(answers=[Answer(json.dumps(GOOD)), Answer(json.dumps(other))]) as server:
        h = llm_harness(tmp_path, repo, server)
        first = h.cycle().attempts[0]
        second = h.cycle().attempts[0]
        prompts = [r["messages"][1]["content"] for r in server.requests]
        h.close()
    assert first["status"] == second["status"] == "promoted"
    assert "A change of this kind that was kept" not in prompts[0]
    assert f"A change of this kind that was kept ({first['improvement_id'][:8]})" in prompts[1]
    assert second["generation"]["examples"] == [first["improvement_id"]]


@pytest.mark.usefixtures("warm_baseline")
def test_an_unreachable_endpoint_is_reported_and_the_ruff_fixer_keeps_working(tmp_path, repo):
    h = Harness(tmp_path, repo, policy="autonomy: limited\n", ruff_select=["F"])._with_generators(
        [
            "ruff_fix",
            {
                "llm": {
                    "backend": "openai",
                    "base_url": "http://127.0.0.1:9/v1",
                    "model": "m",
                    "timeout": 1,
                }
            },
        ]
    )
    result = h.cycle()
    h.close()
    errors = [e for e in h.events if e.kind == "ErrorRaised"]
    assert (
        errors
        and "generator llm (openai) is off: cannot reach http://127.0.0.1:9/v1" in errors[0].message
    )
    assert (
        result.attempts[0]["generator"] == "ruff_fix" and result.attempts[0]["status"] == "promoted"
    )


@pytest.mark.usefixtures("warm_baseline")
def test_an_endpoint_that_comes_up_later_is_used_without_a_restart(tmp_path, repo):
    """At boot the model server may start after overseer: the generator is off at first and
    checked again later, not off for the daemon's whole life."""
    clock = FakeClock()
    with ChatServer(models_status=503) as server:
        h = Harness(tmp_path, repo, clock=clock, ruff_select=["F"])._with_generators(
            ["ruff_fix", server.generator()]
        )
        assert [g.name for g in h.rt.generators()] == ["ruff_fix"]
        server.models_status = 200
        clock.advance(RECHECK_SECONDS - 1)
        assert [g.name for g in h.rt.generators()] == ["ruff_fix"]  # not before its time
        clock.advance(1)
        assert [g.name for g in h.rt.generators()] == ["ruff_fix", "llm"]
        server.models_status = 503
        clock.advance(RECHECK_SECONDS)
        # All working: not checked again (that would find the 503 and turn it off).
        assert [g.name for g in h.rt.generators()] == ["ruff_fix", "llm"]
        h.close()


def test_a_failing_test_is_shown_with_the_code_it_exercises(tmp_path):
    """The fix for a failing test is usually in the code under test: the prompt shows it, and
    the model's edit of it goes through, not only edits of the test."""
    from support.helpers import init_repo

    repo = init_repo(
        tmp_path / "proj",
        {
            "pyproject.toml": "[project]\nname = 'proj'\nversion = '0'\n",
            "src/pkg/__init__.py": "",
            "src/pkg/util.py": "def double(x):\n    return x * 3\n",
            "tests/test_util.py": "from pkg.util import double\n\n\n"
            "def test_double():\n    assert double(2) == 4\n",
        },
    )
    fix = {
        "target_file": "src/pkg/util.py",
        "change_type": "bugfix",
        "risk_level": "low",
        "impact": "double doubles",
        "rationale": "x * 3 triples",
        "edits": [{"search": "return x * 3", "replace": "return x * 2"}],
    }
    with ChatServer(default=Answer(json.dumps(fix))) as server:
        h = Harness(tmp_path, repo, policy="autonomy: supervised\n", ruff_select=["F401"])
        h._with_generators([server.generator(retries=0)])
        [attempt] = h.cycle().attempts
        h.close()
        prompt = server.requests[-1]["messages"][-1]["content"]
    assert attempt["finding"]["kind"] == "failing_test"
    assert "Code under test — File src/pkg/util.py:" in prompt and "return x * 3" in prompt
    assert "File tests/test_util.py:" in prompt
    assert attempt["target_file"] == "src/pkg/util.py"
    # Named from the edits before SAFETY has applied them (it said "in None").
    [generated] = [e for e in h.events if e.kind == "PhaseFinished" and e.phase == "GENERATE"]
    assert generated.summary == "llm failing_test in src/pkg/util.py"
    assert attempt["status"] == "awaiting_approval", attempt["failure_reason"]
    assert attempt["tests_failed"] == 0 and attempt["tests_passed"] == 1


@pytest.mark.usefixtures("warm_baseline")
def test_an_endpoint_that_does_not_answer_is_not_held_against_the_finding(tmp_path, repo):
    """503s until the retries run out: the attempt is an error (not learned from, not counted
    by the circuit breaker), the generator rests, and once its check passes again the same
    finding is tried again."""
    clock = FakeClock()
    with ChatServer(default=Answer(status=503, body=b"{}")) as server:
        h = Harness(tmp_path, repo, clock=clock, ruff_select=["F401"])._with_generators(
            [server.generator(retries=0)]
        )
        [first] = h.cycle().attempts
        assert first["status"] == "error"
        assert "generation failed: " in first["failure_reason"]
        assert first["failure_reason"].endswith("it will be tried again")
        server.default = Answer(json.dumps({**GOOD, "target_file": first["target_file"]}))
        assert h.cycle().attempts == []  # resting: not asked
        clock.advance(RECHECK_SECONDS)
        [second] = h.cycle().attempts
        h.close()
    assert second["fingerprint"] == first["fingerprint"]  # the same finding, tried again
    learned = {o["improvement_id"] for o in rows(tmp_path / "state", "outcomes")}
    assert first["improvement_id"] not in learned and second["improvement_id"] in learned


# -- replies that cannot be read ------------------------------------------------------------

# 5 MB of an object that never closes: json's decoder recursed on it until RecursionError,
# which ended the attempt as an `error`, unrecorded and retried every cycle.
HOSTILE = '{"edits": [' * (5 * 1024 * 1024 // len('{"edits": ['))


@pytest.mark.parametrize(("level", "policy"), LEVELS, ids=[level for level, _ in LEVELS])
def test_a_five_megabyte_hostile_reply_is_a_recorded_failed_generation(
    tmp_path, repo, level, policy
):
    import yaml

    from overseer.core.generate.llm.reply import MAX_REPLY_CHARS
    from overseer.core.generate.model import MAX_RECORDED_REPLY_CHARS

    with ChatServer(default=Answer(HOSTILE)) as server:
        # One round: what is kept of one such reply (repair rounds: test_repair.py).
        h = llm_harness(tmp_path, repo, server, policy=yaml.safe_dump(policy), repair_rounds=0)
        [attempt] = h.cycle().attempts
        again = h.cycle()
        asked = len(server.requests)
        h.close()
    assert attempt["status"] == "failed", attempt["failure_reason"]
    reason = f"the reply is {len(HOSTILE):,} characters long; at most {MAX_REPLY_CHARS:,} are read"
    assert attempt["failure_reason"].endswith(f"no usable reply from the model: {reason}")
    [entry] = attempt["generation"]["replies"]
    assert entry["error"] == reason
    cut = len(HOSTILE) - MAX_RECORDED_REPLY_CHARS
    assert entry["raw"] == HOSTILE[:MAX_RECORDED_REPLY_CHARS] + (
        f"\n[… {cut:,} more characters not kept: the reply had {len(HOSTILE):,}]"
    )
    [outcome] = rows(tmp_path / "state", "outcomes")
    assert outcome["kept"] == 0 and outcome["improvement_id"] == attempt["improvement_id"]
    # Settled like any failed generation: the same finding on the same code is not asked again.
    assert again.attempts == [] and asked == 1
    assert "already made on the same code" in again.summary
    assert f"(failed {attempt['improvement_id'][:8]})" in again.summary


@pytest.mark.usefixtures("warm_baseline")
def test_a_reply_with_nul_and_lone_surrogate_characters_is_recorded_storably(tmp_path, repo):
    """JSON may carry "\\u0000" and "\\udc80"; SQLite's UTF-8 cannot store the latter."""
    wrong = {**GOOD, "edits": [{"search": "import json\nimport os\n", "replace": "\udc80"}]}
    text = "nul \x00 and a lone \ud800 surrogate\n" + json.dumps(wrong, ensure_ascii=False)
    with ChatServer(default=Answer(text)) as server:
        h = llm_harness(tmp_path, repo, server, repair_rounds=0)  # one round, one reply
        [attempt] = h.cycle().attempts
        again = h.cycle()
        asked = len(server.requests)
        h.close()
    assert attempt["status"] == "failed", attempt["failure_reason"]
    [entry] = attempt["generation"]["replies"]
    assert entry["error"] == "edit 1 holds text that is not valid Unicode (a lone surrogate)"
    assert entry["raw"].startswith("nul \ufffd and a lone \ufffd surrogate\n")
    assert '"replace": "\ufffd"' in entry["raw"]
    assert again.attempts == [] and asked == 1
    assert git(repo, "status", "--porcelain") == ""
