"""Run a target's command (tests, benchmark, model-generated code) in a box we can take down.

Each command runs in a new session, hence its own process group, so a timeout kills the whole
tree it spawned, not just the shell at its top. Output goes to a file, not a pipe, so a chatty
test suite can never deadlock us; we keep its tail for the record.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from overseer.core.plumbing import started as processes
from overseer.core.plumbing.confine import Confinement
from overseer.core.plumbing.exits import Process
from overseer.core.plumbing.secrets import redact
from overseer.core.plumbing.spent import spending
from overseer.core.plumbing.stop import CycleStopped

log = logging.getLogger(__name__)

OUTPUT_TAIL_BYTES = 64 * 1024
TERM_GRACE_SECONDS = 3.0


@dataclass(frozen=True)
class CommandResult:
    command: str
    returncode: int | None
    duration: float
    timed_out: bool
    output_tail: str
    stderr_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def describe(self) -> str:
        if self.timed_out:
            return f"`{self.command}` timed out after {self.duration:.0f} s; its process group was killed"
        if self.returncode is not None and self.returncode < 0:
            return f"`{self.command}` was killed by signal {-self.returncode}"
        return f"`{self.command}` exited with status {self.returncode}"


def _limit_memory(limit_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:  # the group is gone and its id reused by someone else's process
        log.warning("could not signal process group %d", pgid)


def run_command(
    command: str | Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float,
    memory_limit_mb: int | None = None,
    stdin_text: str | None = None,
    output_limit: int = OUTPUT_TAIL_BYTES,
    separate_stderr: bool = False,
    cancel: threading.Event | None = None,
    kind: str = "command",
    redact_output: bool = True,
    confinement: Confinement | None = None,
) -> CommandResult:
    """Run `command` (a shell string, or an argv list run without a shell) and wait for it.

    Whatever happens the command's process group is gone when this returns: on timeout it gets
    SIGTERM, then SIGKILL after a grace period; after a normal exit, stragglers it left behind
    are killed too, because a test suite must not leave processes running in our service.
    Output is kept up to its last `output_limit` bytes; stderr joins it unless
    `separate_stderr`, for commands whose stdout is data. When `cancel` is set while the
    command runs, its group is killed and CycleStopped is raised. The time is counted as
    `kind` (tests, ruff, …) in the account of external time (core/plumbing/spent.py).

    What the command printed is redacted as it is captured (core/plumbing/secrets.py), unless the
    caller says its output is data, not a message (`redact_output=False`: ruff's fixed source,
    which is the file itself and is never shown raw).

    With a `confinement` (core/plumbing/confine.py) the command and all it starts may write
    only where it says; the child applies it before the command runs, or does not run it.
    """
    if isinstance(command, str):
        argv: list[str] = ["/bin/sh", "-c", command]
        shown = command
    else:
        argv = list(command)
        shown = " ".join(argv)
    preexec = None
    if memory_limit_mb or confinement is not None:
        limit = (memory_limit_mb or 0) * 1024 * 1024

        def preexec() -> None:
            if limit:
                _limit_memory(limit)
            if confinement is not None:
                confinement.apply()

    with (
        spending(kind),
        tempfile.TemporaryFile() as output,
        tempfile.TemporaryFile() as errors,
    ):
        started = time.monotonic()
        # Its waits with a timeout (communicate, the grace after SIGTERM) wake at the exit.
        proc = Process(
            argv,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            stdout=output,
            stderr=errors if separate_stderr else subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
        )
        pgid = proc.pid  # a new session's leader is its group's leader
        record = processes.remember(pgid, shown, cwd)
        timed_out = False
        try:
            if stdin_text is not None:
                try:
                    proc.communicate(stdin_text.encode(), timeout=timeout)
                except subprocess.TimeoutExpired:
                    timed_out = True
            else:
                timed_out = not _wait(proc, timeout, cancel)
            if timed_out:
                _kill_group(pgid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=TERM_GRACE_SECONDS)
        finally:
            _kill_group(pgid, signal.SIGKILL)
            proc.wait()
            processes.forget(record)
        if cancel is not None and cancel.is_set():
            raise CycleStopped(f"cancelled while running `{shown}`; its process group was killed")
        duration = time.monotonic() - started
        tail = _tail(output, output_limit)
        error_tail = _tail(errors, OUTPUT_TAIL_BYTES)
        if redact_output:
            tail, error_tail = redact(tail), redact(error_tail)
    return CommandResult(
        command=shown,
        returncode=None if timed_out else proc.returncode,
        duration=duration,
        timed_out=timed_out,
        output_tail=tail,
        stderr_tail=error_tail,
    )


def _wait(proc: Process, timeout: float, cancel: threading.Event | None) -> bool:
    """Wait for the process; False on timeout or cancellation (the caller kills the group).

    Woken by the exit itself (plumbing/exits.py), every 0.1 s to look at `cancel` when given.
    """
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            proc.wait(timeout=min(remaining, 0.1) if cancel is not None else remaining)
            return True
        except subprocess.TimeoutExpired:
            pass
        if cancel is not None and cancel.is_set():
            return False


def _tail(file: IO[bytes], limit: int) -> str:
    file.seek(0, os.SEEK_END)
    size = file.tell()
    file.seek(max(0, size - limit))
    return file.read().decode("utf-8", errors="replace")
