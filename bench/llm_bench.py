"""Generation overhead: overseer's path (a child process, a pipe) against calling ctransformers
directly in-process, on the same model, prompt and seed.

    .venv/bin/python bench/llm_bench.py

Target (issue 6): within 5 % plus the child process's start-up. The model is the tests' tiny
random-weight LLaMA, so the figures measure the path, not a model.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from overseer.config import CTransformersSettings  # noqa: E402
from overseer.core.generate.llm.child import cpu_library, patch_ctransformers_tokenize  # noqa: E402
from overseer.core.generate.llm.local_backend import LocalBackend  # noqa: E402
from summary import record  # noqa: E402
from support.tiny_model import build_tiny_llama_gguf  # noqa: E402

RUNS = 11
TOKENS = 400
PROMPT = "hello world the cat and the dog " * 8


def main() -> None:
    model = build_tiny_llama_gguf(Path(tempfile.mkdtemp()) / "tiny.gguf", context_length=1024)
    started = time.monotonic()
    from ctransformers import AutoModelForCausalLM

    patch_ctransformers_tokenize()
    import_seconds = time.monotonic() - started

    backend = LocalBackend(
        CTransformersSettings(
            backend="ctransformers", model_path=model, context_length=1024, max_new_tokens=TOKENS
        )
    )
    direct_load, direct_gen, open_times, child_gen, inside = [], [], [], [], []
    for _ in range(RUNS):  # interleaved, so both see the same machine
        t = time.monotonic()
        llm = AutoModelForCausalLM.from_pretrained(
            str(model),
            model_type="llama",
            context_length=1024,
            threads=1,
            gpu_layers=0,
            lib=cpu_library(),
        )
        direct_load.append(time.monotonic() - t)
        t = time.monotonic()
        text = llm(PROMPT, max_new_tokens=TOKENS, temperature=0.2, seed=42, threads=1, reset=True)
        direct_gen.append(time.monotonic() - t)
        t = time.monotonic()
        with backend.session() as session:
            open_times.append(time.monotonic() - t)
            t = time.monotonic()
            reply = session.generate(PROMPT, seed=42)
            child_gen.append(time.monotonic() - t)
            inside.append(reply.seconds or 0.0)
        assert reply.text == text, "the child and the direct call must produce the same text"

    load, gen = statistics.median(direct_load), statistics.median(direct_gen)
    opened, cgen = statistics.median(open_times), statistics.median(child_gen)
    startup = opened - load  # python, imports, the pipe: what the child costs before the model
    ratio = (opened + cgen - startup) / (load + gen)
    print(f"model: tiny random LLaMA, {TOKENS} new tokens, median of {RUNS} runs")
    print(
        f"direct (in-process): load {load * 1000:.1f} ms · generate {gen * 1000:.1f} ms  (import {import_seconds * 1000:.0f} ms, once)"
    )
    print(f"overseer (child):    open {opened * 1000:.1f} ms · generate {cgen * 1000:.1f} ms")
    print(f"child start-up (python + ctransformers import + pipe): {startup * 1000:.0f} ms")
    print(
        f"generation ratio (child / direct): {cgen / gen:.3f}; the pipe adds {(cgen - statistics.median(inside)) * 1000:.1f} ms"
    )
    print(f"total ratio without the start-up: {ratio:.3f}  (target ≤ 1.05)")
    record("child / direct, without start-up", f"{ratio:.3f}", "≤ 1.05", ratio <= 1.05)
    record("child process start-up", f"{startup * 1000:.0f} ms")


if __name__ == "__main__":
    main()
