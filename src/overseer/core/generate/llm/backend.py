"""What every model backend offers the generator, whatever runs the model.

A backend is checked before use (`check`: the model file is sane, the endpoint answers), then
opened as a session for one attempt — all its rounds, when the model is asked again — : count
tokens with the model's own tokenizer (to fit the prompt in its context), and generate. Local
models run in a child process (child.py), loaded once a session.

A BackendError says the model could not be used at all (it did not load, its process died or
ran out of time, its endpoint is down); a RequestRefused, that it turned down one request.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol


class BackendError(Exception):
    """The model could not be used or did not answer; the message says why."""


class BackendUnavailable(BackendError):
    """The model's endpoint did not answer (down, timing out, overloaded): it may later, so
    an attempt it ends is not held against the finding."""


class RequestRefused(BackendError):
    """The model works but refused this one request (too long for the context it really has,
    say): about what was asked, not about the model, so the model stays in use."""


@dataclass
class Generation:
    text: str
    tokens: int | None = None
    prompt_tokens: int | None = None
    seconds: float | None = None


class Session(Protocol):
    context_length: int

    def count(self, texts: list[str]) -> list[int]: ...

    def generate(self, prompt: str, *, seed: int) -> Generation: ...

    def next_round(self) -> None:
        """The session is used for another round of the same attempt (generate/repair.py):
        its time limit starts again."""
        ...

    def process(self) -> dict[str, Any] | None:
        """The process the model runs in, for the record (pid, models it loaded, seconds the
        load took); None when it runs elsewhere (an HTTP endpoint)."""
        ...


class Backend(Protocol):
    @property
    def name(self) -> str: ...  # read-only: a backend may narrow it (LocalBackend's two names)

    def identity(self) -> dict[str, Any]: ...

    def check(self) -> None: ...

    def session(self, cancel: threading.Event | None = None) -> AbstractContextManager[Session]:
        """A session for one attempt; when `cancel` is set, what it is waiting for is given up
        (a local model's process killed) and CycleStopped raised."""
        ...
