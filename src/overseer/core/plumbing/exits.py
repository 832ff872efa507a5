"""Waiting for a child process to exit, woken by its exit rather than by polling.

`Popen.wait(timeout)` — and with it `communicate(timeout=…)` and `subprocess.run(timeout=…)` —
polls waitpid between sleeps that double from 1 ms up to 50 ms. A git command has closed its
output a moment before it can be reaped, so `communicate` finds it still running and sleeps
first: a millisecond or more on each of the thirty-odd git commands of a cycle (26 ms of a warm
cycle, bench/cycle_overhead.py). A pidfd (Linux ≥ 5.3) wakes us the moment the process exits;
elsewhere the standard library's polling is kept.
"""

from __future__ import annotations

import math
import os
import select
import subprocess
from collections.abc import Sequence
from typing import Any


def exited_within(pid: int, seconds: float) -> bool | None:
    """Whether the (not yet reaped) child `pid` exits within `seconds`; None when no pidfd can
    tell (not Linux ≥ 5.3, or the child is already reaped): the caller waits as before."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(0, math.ceil(seconds * 1000))))
    finally:
        os.close(pidfd)


class Process(subprocess.Popen[Any]):
    """A Popen whose wait with a timeout is woken by the exit (`exited_within`)."""

    def wait(self, timeout: float | None = None) -> int:
        if timeout is not None and self.returncode is None:
            exited = exited_within(self.pid, timeout)
            if exited is False:
                raise subprocess.TimeoutExpired(self.args, timeout)
            if exited:
                return super().wait()  # reaps at once
        return super().wait(timeout)


def run(
    args: Sequence[str], *, input: str | None = None, timeout: float | None = None, **popen: Any
) -> subprocess.CompletedProcess[Any]:
    """`subprocess.run(args, capture_output=True, …)`, waiting on a `Process`."""
    if input is not None:
        popen["stdin"] = subprocess.PIPE
    with Process(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen) as proc:
        try:
            stdout, stderr = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            exc.stdout, exc.stderr = proc.communicate()
            raise
        except BaseException:
            proc.kill()
            raise
        returncode = proc.poll()
    assert returncode is not None
    return subprocess.CompletedProcess(args, returncode, stdout, stderr)
