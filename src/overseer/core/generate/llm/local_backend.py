"""Local models (ctransformers, llama-cpp-python), loaded and run in a child process.

The child is a new process group with a memory limit; every request has a time limit. When the
child crashes (a segfault on a malformed model file), hangs, or runs out of memory, the model
is reported unusable with that reason (the `llm` generator then rests, and the next generator is
given the finding) and the daemon carries on. The model file's header is checked in this
process first, so most broken files never reach native code.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from overseer.config import CTransformersSettings, LlamaCppSettings
from overseer.core.generate.llm.backend import BackendError, Generation, RequestRefused
from overseer.core.generate.llm.header import ModelFileError, check_model_file
from overseer.core.plumbing.confine import (
    Confinement,
    ConfinementUnavailable,
    libc_prctl,
    prepare,
)
from overseer.core.plumbing.stop import CycleStopped

PACKAGES = {"ctransformers": "ctransformers", "llama_cpp": "llama_cpp"}
INSTALL_HINT = {
    "ctransformers": "pip install 'overseer[llm]'",
    "llama_cpp": "pip install 'overseer[llama]'",
}


def file_digest(path: Path) -> str:
    """sha256 of the model file: its identity in the history (so an attempt can be replayed)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LocalBackend:
    def __init__(self, settings: CTransformersSettings | LlamaCppSettings) -> None:
        self.settings = settings
        self.name = settings.backend
        self._digest: tuple[tuple[int, float], str] | None = None

    def identity(self) -> dict[str, Any]:
        path = self.settings.model_path
        stat = path.stat()
        key = (stat.st_size, stat.st_mtime)
        if self._digest is None or self._digest[0] != key:
            self._digest = (key, file_digest(path))
        return {
            "backend": self.name,
            "model_path": str(path),
            "model_sha256": self._digest[1],
            "model_type": getattr(self.settings, "model_type", None),
        }

    def check(self) -> None:
        package = PACKAGES[self.name]
        if importlib.util.find_spec(package) is None:
            raise BackendError(f"{package} is not installed ({INSTALL_HINT[self.name]})")
        try:
            check_model_file(self.settings.model_path)
        except ModelFileError as exc:
            raise BackendError(str(exc)) from None

    @contextmanager
    def session(self, cancel: threading.Event | None = None) -> Iterator[ChildSession]:
        self.check()
        child = ChildSession(self.settings, cancel)
        try:
            child.load()
            yield child
        finally:
            child.close()


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _child_setup(
    memory_mb: int | None, prctl: Callable[..., int] | None, confinement: Confinement | None
) -> None:
    """In the child, before the model code runs: its memory limit; SIGKILL when the thread
    that started it dies (a daemon killed outright, by the OOM killer or `systemctl kill`,
    cannot kill its model process itself, and a model halfway through a long generation only
    reads its stdin, and finds the parent gone, minutes later; the session starts, uses and
    closes the child in one thread, so that thread's end is the session's end at the latest);
    and, where Landlock is, no right to write any file: a model file is data from elsewhere,
    and native code a crafted one subverts gets nothing to write to (core/plumbing/confine.py;
    the child's answers go through the pipes it was given)."""
    if memory_mb:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if confinement is not None:
        confinement.apply()


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class ChildSession:
    """One model, loaded in one child process, for one attempt (all its rounds). The time limit
    is a round's: loading and generating in the first, generating in each later one. When
    `cancel` is set (the daemon is stopping and the phase's grace is over, or a second
    signal came) the child is killed at once, whatever it is doing, and CycleStopped raised:
    a stop must not wait out a generation's time limit."""

    #: How often a request looks at `cancel` while it waits for the child's answer.
    CANCEL_POLL_SECONDS = 0.1

    def __init__(
        self,
        settings: CTransformersSettings | LlamaCppSettings,
        cancel: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.cancel = cancel
        self.context_length = settings.context_length
        # Closed in close(): it outlives this method, as long as the child does.
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        memory, prctl = settings.memory_limit_mb, libc_prctl()
        confinement: Confinement | None = None
        try:
            confinement = prepare([])
            self.confined = f"writes no file (Landlock ABI {confinement.version})"
        except ConfinementUnavailable as exc:
            self.confined = f"not confined: {exc}"
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "overseer.core.generate.llm.child"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
                start_new_session=True,
                preexec_fn=lambda: _child_setup(memory, prctl, confinement),
                env={**os.environ, "OMP_NUM_THREADS": str(settings.threads)},
            )
        finally:
            if confinement is not None:
                confinement.close()
        self.deadline = time.monotonic() + settings.time_limit
        self.loaded: dict[str, Any] = {}  # what the child said when it loaded the model

    def next_round(self) -> None:
        self.deadline = time.monotonic() + self.settings.time_limit

    def process(self) -> dict[str, Any]:
        return {"pid": self.proc.pid, "confined": self.confined, **self.loaded}

    def _stderr_tail(self) -> str:
        self.stderr.seek(0, os.SEEK_END)
        size = self.stderr.tell()
        self.stderr.seek(max(0, size - 2000))
        return self.stderr.read().decode(errors="replace").strip()

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def _answer_ready(self, what: str) -> bool:
        """Wait for the child's answer: True when it can be read, False when the round's
        time is up; raises CycleStopped (the child killed) when cancelled meanwhile."""
        assert self.proc.stdout is not None
        while True:
            if self.cancel is not None and self.cancel.is_set():
                self._kill()
                raise CycleStopped(f"cancelled while {what}; the model's process was killed")
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self.cancel is not None:
                remaining = min(remaining, self.CANCEL_POLL_SECONDS)
            if select.select([self.proc.stdout], [], [], remaining)[0]:
                return True

    def request(self, message: dict[str, Any], what: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # it died; reading says how
        if not self._answer_ready(what):
            self._kill()
            raise BackendError(
                f"the model did not finish {what} within {self.settings.time_limit:.0f} s "
                "(time_limit); its process was killed"
            )
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            tail = self._stderr_tail()
            raise BackendError(
                f"the model process {_describe_exit(code)} while {what} "
                f"{self.settings.model_path}" + (f"; it said: {tail[-500:]}" if tail else "")
            )
        answer: dict[str, Any] = json.loads(line)  # the child's answer: one JSON object a line
        if not answer.get("ok"):
            # The model loaded, then an error in Python (not a crash) refused this input, such
            # as a prompt beyond its context; a model that cannot load is no use for any.
            refused = BackendError if what == "loading" else RequestRefused
            raise refused(f"the model failed while {what}: {answer.get('error')}")
        return answer

    def load(self) -> None:
        s = self.settings
        answer = self.request(
            {
                "op": "load",
                "backend": s.backend,
                "model_path": str(s.model_path),
                "model_type": getattr(s, "model_type", None),
                "context_length": s.context_length,
                "threads": s.threads,
            },
            "loading",
        )
        self.loaded = {k: answer[k] for k in ("loads", "load_seconds") if k in answer}

    def count(self, texts: list[str]) -> list[int]:
        counts: list[int] = self.request({"op": "count", "texts": texts}, "counting tokens")[
            "counts"
        ]
        return counts

    def generate(self, prompt: str, *, seed: int) -> Generation:
        s = self.settings
        answer = self.request(
            {
                "op": "generate",
                "prompt": prompt,
                "max_new_tokens": s.max_new_tokens,
                "temperature": s.temperature,
                "seed": seed,
            },
            "generating",
        )
        return Generation(
            text=answer["text"], tokens=answer.get("tokens"), seconds=answer.get("seconds")
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            if self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything it started
        self.stderr.close()
