"""Target commands run in a process group that is taken down whole."""

from __future__ import annotations

import os
import sys
import time

from overseer.core.plumbing.sandbox import run_command
from support.processes import wait_gone


def test_output_and_exit_status(tmp_path):
    result = run_command("echo out; echo err >&2; exit 3", cwd=tmp_path, timeout=10)
    assert result.returncode == 3 and not result.ok and not result.timed_out
    assert "out" in result.output_tail and "err" in result.output_tail
    assert "exited with status 3" in result.describe()


def test_a_hanging_command_and_all_its_children_are_killed_on_timeout(tmp_path):
    marker = "313.25"  # a sleep only this test starts
    started = time.monotonic()
    result = run_command(
        f"sleep {marker} & sleep {marker} & sleep {marker}", cwd=tmp_path, timeout=1
    )
    assert result.timed_out and result.returncode is None
    assert time.monotonic() - started < 8
    assert "timed out after 1 s" in result.describe()
    assert wait_gone(marker, tmp_path) == []


def test_children_left_behind_by_a_command_that_exits_are_killed(tmp_path):
    marker = "314.5"
    result = run_command(f"sleep {marker} & echo started", cwd=tmp_path, timeout=10)
    assert result.ok
    assert wait_gone(marker, tmp_path) == []


def test_a_command_that_ignores_sigterm_is_killed(tmp_path):
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(315.5)"
    result = run_command([sys.executable, "-c", script], cwd=tmp_path, timeout=0.5)
    assert result.timed_out
    assert wait_gone("315.5", tmp_path) == []


def test_memory_limit(tmp_path):
    hog = "x = bytearray(800 * 1024 * 1024); print('allocated')"
    limited = run_command(
        [sys.executable, "-c", hog], cwd=tmp_path, timeout=30, memory_limit_mb=300
    )
    assert not limited.ok and "MemoryError" in limited.output_tail
    free = run_command([sys.executable, "-c", hog], cwd=tmp_path, timeout=30, memory_limit_mb=None)
    assert free.ok and "allocated" in free.output_tail


def test_only_the_tail_of_a_huge_output_is_kept(tmp_path):
    result = run_command(
        [sys.executable, "-c", "print('x' * 1_000_000); print('the end')"], cwd=tmp_path, timeout=30
    )
    assert result.ok and len(result.output_tail) <= 64 * 1024
    assert result.output_tail.rstrip().endswith("the end")


def test_the_environment_is_exactly_what_was_given(tmp_path):
    env = {"PATH": os.environ["PATH"], "ONLY": "this"}
    result = run_command("env", cwd=tmp_path, timeout=10, env=env)
    assert "ONLY=this" in result.output_tail and "HOME=" not in result.output_tail
