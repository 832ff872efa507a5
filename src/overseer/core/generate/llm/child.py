"""The process a local model lives in: `python -m overseer.core.generate.llm.child`.

Native model code may crash on a bad file (ctransformers segfaults on several); here, that ends
this process, not the daemon. The parent writes one JSON request per line to our stdin and reads
one JSON answer per line from our stdout. The native libraries print to stdout too, so their
output is moved to stderr before anything is loaded, and our answers keep the original stdout.

Requests: {"op": "load", "backend", "model_path", "model_type", "context_length", "threads"},
then {"op": "count", "texts": [...]} and {"op": "generate", "prompt", "max_new_tokens",
"temperature", "seed"}. Answers: {"ok": true, ...} or {"ok": false, "error": "..."}; a load's says how long it took and
how many models this process has loaded.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def cpu_library() -> str:
    """Which of ctransformers' prebuilt libraries this CPU can run. Choosing ourselves spares
    the 1.3 s its own detection (py-cpuinfo) takes."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "basic"
    if " avx2" in flags:
        return "avx2"
    return "avx" if " avx" in flags else "basic"


def patch_ctransformers_tokenize() -> None:
    """ctransformers 0.2.27 sizes its token buffer as len(text) + 1, but the tokenizer may add
    a leading space and fall back to one token per byte: non-ASCII text overflows the heap and
    the process dies. A buffer of 3 tokens per byte (plus room) cannot overflow."""
    import ctypes

    import ctransformers.llm as ctl

    def tokenize(self: Any, text: str, add_bos_token: bool | None = None) -> list[int]:
        if add_bos_token is None:
            add_bos_token = self.model_type == "llama"
        raw = text.encode("utf-8")
        buffer = (ctypes.c_int * (3 * len(raw) + 3))()
        n = self.ctransformers_llm_tokenize(raw, add_bos_token, buffer)
        return buffer[:n]

    ctl.LLM.tokenize = tokenize


class Model:
    def __init__(self, request: dict[str, Any]) -> None:
        self.backend = request["backend"]
        self.context_length = int(request["context_length"])
        self.threads = int(request.get("threads", 1))
        path = request["model_path"]
        if self.backend == "ctransformers":
            from ctransformers import AutoModelForCausalLM

            patch_ctransformers_tokenize()
            self.llm = AutoModelForCausalLM.from_pretrained(
                str(path),
                model_type=request.get("model_type") or "llama",
                context_length=self.context_length,
                threads=self.threads,
                gpu_layers=0,
                lib=cpu_library(),
            )
        elif self.backend == "llama_cpp":
            from llama_cpp import Llama

            self.llm = Llama(
                model_path=path, n_ctx=self.context_length, n_threads=self.threads, verbose=False
            )
        else:
            raise ValueError(f"unknown backend {self.backend!r}")

    def count(self, texts: list[str]) -> list[int]:
        if self.backend == "ctransformers":
            return [len(self.llm.tokenize(t)) for t in texts]
        return [len(self.llm.tokenize(t.encode(), add_bos=True)) for t in texts]

    def generate(self, request: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        if self.backend == "ctransformers":
            text = self.llm(
                request["prompt"],
                max_new_tokens=int(request["max_new_tokens"]),
                temperature=float(request["temperature"]),
                seed=int(request["seed"]),
                threads=self.threads,
                reset=True,
            )
            tokens = len(self.llm.tokenize(text, add_bos_token=False)) if text else 0
        else:
            out = self.llm.create_completion(
                request["prompt"],
                max_tokens=int(request["max_new_tokens"]),
                temperature=float(request["temperature"]),
                seed=int(request["seed"]),
            )
            text = out["choices"][0]["text"]
            tokens = out.get("usage", {}).get("completion_tokens")
        return {"text": text, "tokens": tokens, "seconds": round(time.monotonic() - started, 3)}


def main() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)  # our answers: the original stdout
    os.dup2(2, 1)  # whatever the native libraries print goes to stderr
    sys.stdout = sys.stderr
    model: Model | None = None
    loads = 0  # said with each load: how often this process loaded a model
    for line in sys.stdin:
        try:
            request = json.loads(line)
            op = request.get("op")
            if op == "load":
                started = time.monotonic()
                model = Model(request)
                loads += 1
                answer: dict[str, Any] = {
                    "load_seconds": round(time.monotonic() - started, 3),
                    "loads": loads,
                }
            elif model is None:
                raise RuntimeError("no model loaded")
            elif op == "count":
                answer = {"counts": model.count(request["texts"])}
            elif op == "generate":
                answer = model.generate(request)
            else:
                raise ValueError(f"unknown op {op!r}")
            answers.write(json.dumps({"ok": True, **answer}) + "\n")
        except Exception as exc:  # the parent decides what an error means
            answers.write(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}) + "\n")


if __name__ == "__main__":
    main()
