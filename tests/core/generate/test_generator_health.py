"""A broken generator never starves the others: a generator that fails on its own account (its
model does not load, its endpoint does not answer) hands the finding to the next one in the same
attempt, rests until its check passes again, and is shown as off — with real repositories, the
real tiny model, the scripted chat server, a real daemon and the real command line."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta

import pytest

from overseer.base.clock import FakeClock, iso
from overseer.client import Client
from overseer.core.generate.candidate import GeneratorFault
from overseer.core.generate.health import RECHECK_SECONDS, GeneratorHealthBoard
from overseer.daemon.server import run_daemon
from overseer.tui.widgets.status_bar import StatusBar
from support.chat_server import Answer, ChatServer
from support.helpers import (
    Harness,
    git,
    init_repo,
    next_event,
    overseer,
    rows,
)
from support.tui import SIZE, app_for, connected, text_of, until

UNUSABLE = "I think you should refactor everything."


def unloadable(model, path):
    """The tiny model with one tensor renamed: its header is sound (the check passes), and
    ctransformers refuses to build a model without its token embeddings."""
    data = model.read_bytes()
    assert data.count(b"token_embd.weight") == 1
    path.write_bytes(data.replace(b"token_embd.weight", b"token_embd.wxight"))
    return path


def fingerprint(repo, generator, finding, base):
    blob = git(repo, "rev-parse", f"{base}:{finding['file']}")
    key = f"{generator}|{finding['kind']}|{finding['file']}|{blob}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def off(h):
    return {g["name"]: g for g in h.rt.generator_status() if g["healthy"] is False}


def test_a_model_that_passes_its_check_but_cannot_load_leaves_the_finding_to_ruff(tmp_path, model):
    """Listed first, the broken model claims the finding; in the same attempt ruff_fix makes the
    change, which goes on exactly as it does with ruff alone, and the record says why."""
    bad = unloadable(model, tmp_path / "bad.gguf")
    repo = init_repo(tmp_path / "proj")
    h = Harness(tmp_path, repo, ruff_select=["F"])._with_generators(
        [
            {"llm": {"backend": "ctransformers", "model_path": str(bad), "context_length": 256}},
            "ruff_fix",
        ]
    )
    assert [g.name for g in h.rt.generators()] == ["llm", "ruff_fix"]  # the check passes
    base = git(repo, "rev-parse", "main")
    result = h.cycle()
    h.close()

    alone_dir = tmp_path / "alone"
    alone_repo = init_repo(alone_dir / "proj")
    alone = Harness(alone_dir, alone_repo, ruff_select=["F"])
    [reference] = alone.cycle().attempts
    alone.close()

    [attempt] = result.attempts
    assert attempt["generator"] == "ruff_fix"
    for column in ("status", "verdict", "risk_level", "summary", "generated_code"):
        assert attempt[column] == reference[column], column
    unranked = [{**a["finding"], "score": None} for a in (attempt, reference)]
    assert unranked[0] == unranked[1]  # the same finding (its rank is sampled per cycle)
    assert attempt["status"] == "promoted", attempt["failure_reason"]
    assert git(repo, "show", "main:pkg/util.py") == git(alone_repo, "show", "main:pkg/util.py")
    # Known by ruff_fix's fingerprint: what happens to it is ruff_fix's, never the model's.
    assert attempt["fingerprint"] == fingerprint(repo, "ruff_fix", attempt["finding"], base)

    [failed] = attempt["generation"]["generators_failed"]
    assert failed["generator"] == "llm"
    assert "the model failed while loading: RuntimeError: Failed to create LLM" in failed["reason"]
    assert failed["generation"]["model"]["model_sha256"]  # which model it was
    generate = next(
        e for e in h.events if e.kind == "PhaseFinished" and e.phase.value == "GENERATE"
    )
    assert generate.outcome == "ok" and generate.summary.endswith("(after llm failed)")

    llm = off(h)["llm"]
    assert "failed while loading" in llm["reason"] and llm["label"] == "llm (ctransformers)"
    errors = [e.message for e in h.events if e.kind == "ErrorRaised"]
    assert errors == [f"generator llm (ctransformers) is off: {llm['reason']}"]
    [outcome] = rows(tmp_path / "state", "outcomes")  # learned as ruff_fix's, like any other
    assert outcome["generator"] == "ruff_fix" and outcome["kept"] == 1


def test_an_off_generator_gets_no_finding_until_its_check_passes_again(tmp_path):
    """The endpoint does not answer: the model is asked once, ruff_fix takes the finding, and
    the model is asked nothing more until its rest is over and its check passes. Its attempt
    does not settle the finding for the model either."""
    # ruff removes `import json` safely as far as ruff can tell, but a test imports it from
    # there: ruff_fix's change fails its tests, which settles the finding against ruff_fix.
    repo = init_repo(
        tmp_path / "proj",
        {
            "pkg/__init__.py": "",
            "pkg/util.py": "import json\n\n\ndef double(x):\n    return x * 2\n",
            "tests/test_util.py": "from pkg.util import double, json\n\n\n"
            "def test_double():\n    assert double(2) == 4 and json.dumps(1) == '1'\n",
        },
    )
    clock = FakeClock()
    with ChatServer(default=Answer(status=503, body=b"{}")) as server:
        h = Harness(tmp_path, repo, clock=clock, ruff_select=["F401"])._with_generators(
            [server.generator(retries=0, repair_rounds=0), "ruff_fix"]  # one request each
        )
        [first] = h.cycle().attempts
        assert len(server.requests) == 1
        assert first["generator"] == "ruff_fix" and first["status"] == "failed"
        assert "evaluation failed" in first["failure_reason"]
        assert first["generation"]["generators_failed"][0]["reason"].endswith("HTTP 503")
        llm = off(h)["llm"]
        assert llm["reason"].endswith("failed 1 time(s): HTTP 503")
        assert llm["next_check"] > llm["since"]

        # Still resting: the finding goes to ruff_fix, whose attempt settled it; the model is
        # not asked.
        server.default = Answer(UNUSABLE)
        clock.advance(RECHECK_SECONDS - 1)
        second = h.cycle()
        assert second.attempts == [] and "already made on the same code" in second.summary
        assert len(server.requests) == 1 and "llm" in off(h)

        # Rested: the check passes, and the model gets the finding ruff_fix failed on.
        clock.advance(1)
        [third] = h.cycle().attempts
        h.close()
    assert len(server.requests) == 2
    assert off(h) == {}
    assert third["generator"] == "llm"
    assert (third["finding_kind"], third["finding"]["file"]) == ("F401", "pkg/util.py")
    assert third["status"] == "failed" and "no usable reply" in third["failure_reason"]
    assert third["fingerprint"] != first["fingerprint"]
    assert [e.message for e in h.events if e.kind == "ErrorRaised"] == [
        f"generator llm (openai) is off: {llm['reason']}"
    ]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (Answer(UNUSABLE), "no usable reply from the model"),
        # Too long for what the server really has: about this prompt, not the endpoint.
        (Answer(status=400, body=b'{"error": "context length exceeded"}'), "HTTP 400"),
    ],
)
def test_a_reply_or_refusal_about_the_finding_is_the_finding_s_failure(
    tmp_path, repo, answer, reason
):
    """Not the generator's fault: the attempt fails as the model's, ruff_fix is not tried, and
    the model stays on."""
    with ChatServer(default=answer) as server:
        h = Harness(tmp_path, repo, ruff_select=["F"])._with_generators(
            [server.generator(retries=0, repair_rounds=0), "ruff_fix"]  # one request
        )
        [attempt] = h.cycle().attempts
        h.close()
        assert len(server.requests) == 1
    assert attempt["generator"] == "llm" and attempt["status"] == "failed"
    assert reason in attempt["failure_reason"]
    assert "generators_failed" not in (attempt["generation"] or {})
    assert [g["healthy"] for g in h.rt.generator_status()] == [True, True]
    assert not [e for e in h.events if e.kind == "ErrorRaised"]
    assert "import json" in (repo / "pkg/util.py").read_text()  # ruff_fix made nothing


def test_when_no_generator_works_the_attempt_is_an_error_tried_again_later(tmp_path, model):
    """Every generator able to act on the finding fails on its own account: nobody's failure
    is held against the finding."""
    bad = unloadable(model, tmp_path / "bad.gguf")
    with ChatServer(default=Answer(status=503, body=b"{}")) as server:
        repo = init_repo(tmp_path / "proj")
        h = Harness(tmp_path, repo, ruff_select=["F"])._with_generators(
            [
                server.generator(retries=0),
                {"llm": {"backend": "ctransformers", "model_path": str(bad)}},
            ]
        )
        [attempt] = h.cycle().attempts
        h.close()
    assert attempt["status"] == "error"
    assert attempt["failure_reason"].startswith("generation failed: llm: ")
    assert attempt["failure_reason"].endswith("; it will be tried again")
    first, second = attempt["generation"]["generators_failed"]
    assert first["reason"].endswith("HTTP 503") and "failed while loading" in second["reason"]
    # Two generators of one name, each with its own record.
    assert [g["label"] for g in h.rt.generator_status() if not g["healthy"]] == [
        "llm (openai)",
        "llm (ctransformers)",
    ]
    assert rows(tmp_path / "state", "outcomes") == []  # not learned from


class Checked:
    """A generator whose check says what the test says."""

    name = label = "checked"

    def __init__(self) -> None:
        self.problem: str | None = None
        self.checks = 0

    def check(self) -> None:
        self.checks += 1
        if self.problem:
            raise GeneratorFault(self.problem)


def test_the_health_record_keeps_since_when_and_checks_only_what_is_due():
    clock = FakeClock()
    generator = Checked()
    changes = []
    board = GeneratorHealthBoard(
        [generator], clock, on_change=lambda r, before: changes.append((before, r.healthy))
    )
    assert board.usable() == [generator] and changes == [(None, True)]
    board.usable()
    assert generator.checks == 1  # healthy: not checked again

    board.failed(generator, "it died")
    went_off = clock.now()
    assert board.usable() == [] and generator.checks == 1
    generator.problem = "still dead"
    clock.advance(RECHECK_SECONDS)
    assert board.usable() == [] and generator.checks == 2
    [record] = board.snapshot()
    assert record["reason"] == "still dead"
    assert record["since"] == iso(went_off)  # off all along
    assert record["next_check"] == iso(clock.now() + timedelta(seconds=RECHECK_SECONDS))
    generator.problem = None
    clock.advance(RECHECK_SECONDS)
    assert board.usable() == [generator]
    assert board.snapshot()[0] == {
        "name": "checked",
        "label": "checked",
        "healthy": True,
        "reason": None,
        "since": None,
        "next_check": None,
    }
    assert changes == [(None, True), (True, False), (False, False), (False, True)]


# -- shown to people -------------------------------------------------------------------------


async def a_cycle(client) -> None:
    await client.request("subscribe")
    await client.request("run_now")
    await next_event(client, "CycleFinished")


@pytest.mark.usefixtures("warm_baseline")
async def test_overseer_status_shows_an_off_generator_and_why(tmp_path, daemon_options):
    with ChatServer(default=Answer(status=503, body=b"{}")) as server:
        opts = daemon_options(generators=[server.generator(retries=0), "ruff_fix"])
        socket = str(opts.config.daemon.socket)
        async with run_daemon(opts) as daemon, Client(daemon.socket_path) as client:
            before = await asyncio.to_thread(overseer, "status", env={"OVERSEER_SOCKET": socket})
            await a_cycle(client)
            status = await asyncio.to_thread(overseer, "status", env={"OVERSEER_SOCKET": socket})
            as_json = await asyncio.to_thread(
                overseer, "status", "--json", env={"OVERSEER_SOCKET": socket}
            )
        offline = await asyncio.to_thread(
            overseer,
            "status",
            env={"OVERSEER_SOCKET": socket, "OVERSEER_STATE_DIR": str(tmp_path / "state")},
        )
    assert before.returncode == 0 and "\ngenerator " not in before.stdout
    assert status.returncode == 0, status.stderr
    why = f"{server.url} failed 1 time(s): HTTP 503"
    [line] = [line for line in status.stdout.splitlines() if line.startswith("generator ")]
    assert line.startswith("generator llm (openai) OFF since ")
    assert f": {why} — checked again at " in line
    shown = json.loads(as_json.stdout)["generators"]
    assert [(g["name"], g["healthy"]) for g in shown] == [("llm", False), ("ruff_fix", True)]
    assert shown[0]["reason"] == why
    # Without the daemon: what it last recorded, said to be that.
    assert offline.returncode == 3
    [line] = [line for line in offline.stdout.splitlines() if line.startswith("generator ")]
    assert "generator llm (openai) OFF since " in line and " (last recorded " in line
    assert line.split(": ", 1)[1].startswith(why)


@pytest.mark.usefixtures("warm_baseline")
async def test_the_tui_status_bar_shows_llm_off_and_why_on_hover(daemon_options):
    with ChatServer(default=Answer(status=503, body=b"{}")) as server:
        opts = daemon_options(generators=[server.generator(retries=0), "ruff_fix"])
        async with run_daemon(opts) as daemon:
            app = app_for(daemon)
            async with app.run_test(size=SIZE) as pilot:
                await connected(pilot)
                bar = app.query_one(StatusBar)
                assert "OFF" not in text_of(bar) and bar.tooltip is None
                await pilot.press("n")
                await until(pilot, lambda: "llm OFF" in text_of(bar), what="llm OFF shown")
                assert "llm (openai) is off since " in str(bar.tooltip)
                assert f"{server.url} failed 1 time(s): HTTP 503" in str(bar.tooltip)
