"""Local models through the real ctransformers, in the real child process, on a tiny
random-weight model the test builds (nothing is downloaded)."""

from __future__ import annotations

import json
import random
import time

import pytest

from overseer.config import CTransformersSettings
from overseer.core.analyze.findings import Finding
from overseer.core.generate.llm import BackendError
from overseer.core.generate.llm.header import ModelFileError, check_model_file
from overseer.core.generate.llm.local_backend import ChildSession, LocalBackend
from overseer.core.generate.llm.prompt import PromptTooLong, build_prompt
from support.helpers import Harness, overseer, rows
from support.processes import children_with

CHILD = "overseer.core.generate.llm.child"


def local(model, **kw) -> LocalBackend:
    return LocalBackend(
        CTransformersSettings(
            **{
                "backend": "ctransformers",
                "model_path": model,
                "context_length": 256,
                "max_new_tokens": 12,
                **kw,
            }
        )
    )


def test_tokens_are_generated_and_a_seed_reproduces_them(model):
    with local(model).session() as session:
        assert session.context_length == 256
        first = session.generate("hello world", seed=42)
        again = session.generate("hello world", seed=42)
        other = session.generate("hello world", seed=7)
    assert first.text.strip() and 0 < first.tokens <= 13
    assert first.text == again.text
    assert other.text != first.text


def test_tokens_are_counted_with_the_models_own_tokenizer(model):
    with local(model).session() as session:
        short, longer, odd = session.count(["hello world", "hello world " * 20, "ééé — ünïcödé ✔"])
    assert 2 <= short < longer
    assert odd > 3  # bytes the vocabulary lacks: one token each, and no crash


def test_the_prompt_is_fitted_to_the_context_with_those_counts(model):
    code = "".join(f"def f{n}(x):\n    return x + {n}\n\n\n" for n in range(200))
    finding = Finding(
        kind="F401",
        area="quality",
        change_type="quality",
        file="pkg/big.py",
        message="unused",
        details={"rows": [400]},
    )
    # The tiny model's vocabulary is small, so most text costs a token per byte.
    with local(model, context_length=2048).session() as session:
        prompt = build_prompt(
            finding,
            "pkg/big.py",
            code,
            [("a" * 12, "example diff " * 40)],
            budget=1200,
            count=session.count,
        )
        [counted] = session.count([prompt.text])
        with pytest.raises(PromptTooLong, match="the model's context leaves 200 for the prompt"):
            build_prompt(finding, "pkg/big.py", code, [], budget=200, count=session.count)
    assert counted == prompt.tokens and prompt.tokens + 16 <= 1200
    assert (
        prompt.window is not None and prompt.window[0] <= 400 <= prompt.window[1]
    )  # around the finding
    assert prompt.examples == []  # the example went first


def test_the_time_limit_kills_the_child(model):
    started = time.monotonic()
    with pytest.raises(
        BackendError,
        match=r"did not finish loading within 0 s \(time_limit\); its process was killed",
    ):
        with local(model, time_limit=0.05).session():
            pass
    assert time.monotonic() - started < 10


def test_the_memory_limit_ends_the_child_not_us(model):
    # A huge context asks for a huge cache, which the 64 MB limit refuses: the child dies.
    with pytest.raises(
        BackendError, match="the model process (exited with status|was killed by).* while loading"
    ):
        with local(model, memory_limit_mb=64, context_length=400_000).session():
            pass


def test_a_crash_in_native_code_ends_the_child_not_us(model, tmp_path):
    # A GGUF header followed by noise: ctransformers asks for terabytes and segfaults. The
    # header check would refuse the file; here it is skipped to show what the child is for.
    noise = tmp_path / "noise.gguf"
    rnd = random.Random(0)
    noise.write_bytes(model.read_bytes()[:8] + bytes(rnd.randrange(256) for _ in range(4000)))
    session = ChildSession(
        CTransformersSettings(
            backend="ctransformers", model_path=noise, context_length=256, max_new_tokens=8
        )
    )
    try:
        with pytest.raises(
            BackendError, match="the model process was killed by SIGSEGV while loading"
        ):
            session.load()
    finally:
        session.close()
    # And this process carries on, able to use a good model.
    with local(model).session() as fine:
        assert fine.generate("hello", seed=1).text


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda b: b[: len(b) // 2], "is truncated: tensor"),
        (lambda b: b[:-1000], "is truncated: tensor 'output.weight'"),
        (lambda b: b[:100], "is truncated or corrupted"),
        (lambda b: b"XXXX" + b[4:], "is not a GGUF or GGML model"),
        (lambda b: b"GGUF" + bytes(range(256)) * 40, "GGUF version"),
        (lambda b: b"", "0 bytes: too small"),
        (lambda b: bytes(range(256)) * 100, "is not a GGUF or GGML model"),
    ],
)
def test_damaged_model_files_are_refused_before_loading(model, tmp_path, damage, reason):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(damage(model.read_bytes()))
    with pytest.raises(ModelFileError, match=reason):
        check_model_file(bad)
    with pytest.raises(BackendError, match=reason):
        local(bad).check()


def test_a_good_model_passes_the_check(model):
    assert check_model_file(model) == "gguf v3, llama, 21 tensors"


@pytest.mark.usefixtures("warm_baseline")
def test_a_cycle_with_the_tiny_model_records_its_unusable_reply(tmp_path, repo, model):
    # The random model writes nonsense: the attempt fails with the raw reply recorded.
    h = Harness(tmp_path, repo, policy="autonomy: full\n", ruff_select=["F"])._with_generators(
        [
            {
                "llm": {
                    "backend": "ctransformers",
                    "model_path": str(model),
                    "context_length": 2048,
                    "max_new_tokens": 24,
                }
            }
        ]
    )
    [attempt] = h.cycle().attempts
    h.close()
    assert attempt["status"] == "failed"
    assert "no usable reply from the model" in attempt["failure_reason"]
    generation = attempt["generation"]
    assert generation["model"]["model_sha256"] and generation["model"]["backend"] == "ctransformers"
    assert generation["replies"][0]["raw"] and generation["replies"][0]["tokens"] > 0
    assert generation["prompt_tokens"] <= 2048 - 24
    assert rows(tmp_path / "state", "outcomes")[0]["kept"] == 0

    # Replayed from the record alone: the same model file (by its hash), prompt, settings and
    # seed give the same reply.
    import hashlib

    assert hashlib.sha256(model.read_bytes()).hexdigest() == generation["model"]["model_sha256"]
    settings = generation["settings"]
    replay = local(
        model,
        context_length=settings["context_length"],
        max_new_tokens=settings["max_new_tokens"],
        temperature=settings["temperature"],
    )
    with replay.session() as session:
        for reply in generation["replies"]:
            again = session.generate(generation["prompt"], seed=reply["seed"])
            assert again.text == reply["raw"] and again.tokens == reply["tokens"]


def test_run_once_survives_a_damaged_model_and_ruff_keeps_working(tmp_path, repo, model):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    config = tmp_path / "overseer.yaml"
    config.write_text(
        f"policy: {tmp_path / 'p.yaml'}\ngenerators:\n  - ruff_fix\n  - llm: {{backend: ctransformers, model_path: {bad}}}\n"
        f"targets:\n  - path: {repo}\n    ruff_select: [F]\n"
    )
    (tmp_path / "p.yaml").write_text("autonomy: limited\n")
    out = overseer(
        "run",
        "--once",
        "--config",
        str(config),
        "--state-dir",
        str(tmp_path / "s"),
        "--no-dry-run",
        "--no-require-approval",
    )
    assert out.returncode == 0, out.stderr
    assert "generator llm (ctransformers) is off" in out.stderr and "is truncated" in out.stderr
    assert "promoted to main" in out.stdout
    check = overseer("config", "check", str(config))
    assert (
        check.returncode == 1
        and "generators[1].llm.model_path" in check.stdout
        and "is truncated" in check.stdout
    )


@pytest.mark.usefixtures("warm_baseline")
def test_a_model_damaged_after_start_up_turns_the_generator_off_with_the_reason(
    tmp_path, repo, model
):
    damaged = tmp_path / "model.gguf"
    damaged.write_bytes(model.read_bytes())
    h = Harness(tmp_path, repo, policy="autonomy: full\n", ruff_select=["F"])._with_generators(
        [{"llm": {"backend": "ctransformers", "model_path": str(damaged), "context_length": 2048}}]
    )
    assert [g.name for g in h.rt.generators()] == ["llm"]  # checked at start: fine
    damaged.write_bytes(model.read_bytes()[:-1000])  # then someone truncates it
    [attempt] = h.cycle().attempts
    h.close()
    # The model's fault, not the finding's: an error, not learned from, and the model is off.
    assert attempt["status"] == "error"
    assert (
        "generation failed:" in attempt["failure_reason"]
        and "is truncated" in attempt["failure_reason"]
    )
    assert rows(tmp_path / "state", "outcomes") == []
    [llm] = h.rt.generator_status()
    assert llm["healthy"] is False and "is truncated" in llm["reason"]


def tiny_model_harness(tmp_path, repo, model) -> Harness:
    """A cycle whose model is the tiny one, asked once again when its reply cannot be read
    (it never can: random weights)."""
    return Harness(tmp_path, repo, policy="autonomy: full\n", ruff_select=["F"])._with_generators(
        [
            {
                "llm": {
                    "backend": "ctransformers",
                    "model_path": str(model),
                    "context_length": 2048,
                    "max_new_tokens": 12,
                    "repair_rounds": 1,
                }
            }
        ]
    )


@pytest.mark.usefixtures("warm_baseline")
def test_the_rounds_of_an_attempt_load_the_model_once_in_one_process_that_ends_with_it(
    tmp_path, repo, model
):
    h = tiny_model_harness(tmp_path, repo, model)
    [attempt] = h.cycle().attempts
    h.close()
    assert attempt["status"] == "failed" and attempt["repair_rounds_used"] == 1
    first, second = attempt["rounds"]
    assert second["shown"]["phase"] == "GENERATE"  # asked again: the reply could not be read
    # The same process for both rounds, which loaded one model, once.
    assert first["model_process"]["pid"] == second["model_process"]["pid"]
    assert first["model_process"]["loads"] == second["model_process"]["loads"] == 1
    assert first["model_process"]["load_seconds"] >= 0
    assert children_with(CHILD) == []  # and it ended with the attempt


@pytest.mark.usefixtures("warm_baseline")
def test_an_attempt_stopped_between_rounds_leaves_no_model_process(tmp_path, repo, model):
    from overseer.core.context import RunSettings
    from overseer.core.cycle import run_cycle
    from overseer.core.plumbing.stop import CycleStopped

    h = tiny_model_harness(tmp_path, repo, model)
    ctx = h.context()
    held: list[list[int]] = []

    def stop_when_asked_again(event) -> None:
        if event.kind == "RepairRequested":
            held.append(children_with(CHILD))  # the model kept for the next round
            ctx.stop.request_stop("the daemon stops")

    h.rt.bus.subscribe(stop_when_asked_again)
    with pytest.raises(CycleStopped, match="the daemon stops, before the next round"):
        run_cycle(ctx, RunSettings(dry_run=False, require_approval=False))
    h.close()
    [row] = rows(tmp_path / "state")
    assert row["status"] == "interrupted"
    [round_one] = json.loads(row["rounds"])
    assert held == [[round_one["model_process"]["pid"]]]
    assert children_with(CHILD) == []
