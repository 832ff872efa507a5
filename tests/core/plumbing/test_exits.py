"""Waiting for a child with a timeout is woken by its exit, not by sleeping between polls."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from overseer.core.plumbing import exits
from overseer.core.plumbing.repo import RepoError, run_git
from overseer.core.plumbing.sandbox import run_command


@pytest.fixture
def no_sleeping(monkeypatch):
    """Popen.wait(timeout) sleeps between its polls (subprocess calls time.sleep): any sleep
    while a test waits for a child fails it."""

    def sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s while waiting for a child")

    monkeypatch.setattr(subprocess.time, "sleep", sleep)


@pytest.mark.usefixtures("no_sleeping")
def test_a_child_that_closes_its_output_before_it_exits_is_waited_for_without_sleeping():
    # What every git command does for an instant, here for 50 ms: communicate() reads the end
    # of its output and must then wait for the exit.
    linger = [sys.executable, "-c", "import os, time; os.close(1); os.close(2); time.sleep(0.05)"]
    started = time.monotonic()
    assert exits.run(linger, timeout=10).returncode == 0
    assert time.monotonic() - started < 5


@pytest.mark.usefixtures("no_sleeping")
def test_git_commands_are_waited_for_by_their_exit(repo, monkeypatch):
    waits = []
    wait = exits.Process.wait

    def counted(self, timeout=None):
        waits.append(timeout)
        return wait(self, timeout)

    monkeypatch.setattr(exits.Process, "wait", counted)
    for _ in range(5):
        assert len(run_git(repo, "rev-parse", "HEAD")) == 40
    assert len(waits) >= 5
    with pytest.raises(RepoError, match="Needed a single revision"):
        run_git(repo, "rev-parse", "--verify", "no-such-ref^{commit}")


@pytest.mark.usefixtures("no_sleeping")
def test_a_command_fed_on_stdin_is_waited_for_without_sleeping(tmp_path):
    for _ in range(10):
        result = run_command(["cat"], cwd=tmp_path, timeout=10, stdin_text="hello")
        assert result.ok and result.output_tail == "hello"


def test_the_timeout_still_holds(tmp_path):
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        exits.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.3)
    assert time.monotonic() - started < 10
    proc = exits.Process([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.2)
        assert proc.returncode is None
    finally:
        proc.kill()
        assert proc.wait(timeout=10) == -9


def test_run_returns_what_the_command_said(tmp_path):
    done = exits.run(
        ["sh", "-c", "cat; echo err >&2; exit 3"], input="in", text=True, cwd=tmp_path, timeout=10
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, "in", "err\n")
