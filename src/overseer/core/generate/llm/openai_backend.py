"""An OpenAI-compatible chat-completions endpoint: a local llama.cpp server, Ollama, vLLM, or a
hosted one. Plain HTTP from the standard library; the API key is read from an environment
variable and never written anywhere."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from overseer.config import OpenAISettings
from overseer.core.generate.llm.backend import (
    BackendError,
    BackendUnavailable,
    Generation,
    RequestRefused,
    Session,
)
from overseer.core.plumbing.stop import CycleStopped

SYSTEM = "You are a careful software engineer. You answer with one JSON object and nothing else."
RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}
# Refusals of one request's content; 401, 403 or 404 would refuse every request alike.
ABOUT_THE_REQUEST = {400, 413, 422}


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        settings: OpenAISettings,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        env = os.environ if environ is None else environ
        self.api_key = env.get(settings.api_key_env) if settings.api_key_env else None
        self.sleep = sleep

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "endpoint": self.settings.base_url,
            "model": self.settings.model,
        }

    def _request(self, method: str, path: str, body: dict[str, Any] | None, timeout: float) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.settings.base_url}{path}", data=data, method=method
        )
        request.add_header("Content-Type", "application/json")
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read(16 * 1024 * 1024)
        try:
            return json.loads(raw)
        except ValueError:
            raise BackendError(
                f"{self.settings.base_url}{path} answered with something that is not JSON: "
                f"{raw[:200]!r}"
            ) from None

    def check(self) -> None:
        """Reachable, and serving the model? Raises BackendError saying what is wrong."""
        try:
            listing = self._request(
                "GET", "/models", None, timeout=min(10.0, self.settings.timeout)
            )
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise BackendError(
                    f"{self.settings.base_url} refused us ({exc.code}); is "
                    f"${self.settings.api_key_env} set to a valid key?"
                ) from None
            if exc.code == 404:
                return  # some servers have no model listing; generation will tell
            raise BackendError(
                f"{self.settings.base_url}/models answered HTTP {exc.code}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BackendError(f"cannot reach {self.settings.base_url}: {reason}") from None
        models = [m.get("id") for m in (listing or {}).get("data", []) if isinstance(m, dict)]
        if models and self.settings.model not in models:
            raise BackendError(
                f"{self.settings.base_url} does not serve model {self.settings.model!r} "
                f"(it serves: {', '.join(map(str, models[:10]))})"
            )

    @contextmanager
    def session(self, cancel: threading.Event | None = None) -> Iterator[Session]:
        yield _HTTPSession(self, cancel)


class _HTTPSession:
    def __init__(self, backend: OpenAIBackend, cancel: threading.Event | None) -> None:
        self.backend = backend
        self.cancel = cancel  # looked at between retries: one request has its own timeout
        self.context_length = backend.settings.context_length

    def next_round(self) -> None:
        pass  # every request has its own time limit

    def process(self) -> None:
        return None  # the model runs behind the endpoint

    def count(self, texts: list[str]) -> list[int]:
        # The endpoint's tokenizer is not ours to call; four characters a token is the usual
        # estimate, rounded up so the budget errs on the safe side.
        return [len(t) // 3 + 1 for t in texts]

    def generate(self, prompt: str, *, seed: int) -> Generation:
        s = self.backend.settings
        body = {
            "model": s.model,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": prompt},
            ],
            "temperature": s.temperature,
            "max_tokens": s.max_new_tokens,
            "seed": seed,
        }
        errors = []
        started = time.monotonic()
        for attempt in range(s.retries + 1):
            if attempt:
                self.backend.sleep(min(2 ** (attempt - 1), 30))  # 1 s, 2 s, 4 s …
            if self.cancel is not None and self.cancel.is_set():
                raise CycleStopped("cancelled while waiting for the model's endpoint")
            try:
                answer = self.backend._request("POST", "/chat/completions", body, s.timeout)
            except urllib.error.HTTPError as exc:
                errors.append(f"HTTP {exc.code}")
                if exc.code in RETRYABLE:
                    continue
                # A server whose context is smaller than configured answers 400 (or 413) to
                # one long prompt; other prompts still go through.
                refused = RequestRefused if exc.code in ABOUT_THE_REQUEST else BackendError
                raise refused(f"{s.base_url} refused the request: HTTP {exc.code}") from None
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                errors.append(str(getattr(exc, "reason", exc)))
                continue
            try:
                text = answer["choices"][0]["message"]["content"]
                if not isinstance(text, str):
                    raise TypeError("content is not a string")
            except (KeyError, IndexError, TypeError) as exc:
                raise BackendError(
                    f"{s.base_url} answered with something that is not a chat completion ({exc}): "
                    f"{json.dumps(answer)[:200]}"
                ) from None
            usage = answer.get("usage") or {}
            return Generation(
                text=text,
                tokens=usage.get("completion_tokens"),
                prompt_tokens=usage.get("prompt_tokens"),
                seconds=round(time.monotonic() - started, 3),
            )
        raise BackendUnavailable(
            f"{s.base_url} failed {s.retries + 1} time(s): {'; '.join(errors)}"
        )
