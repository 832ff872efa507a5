"""The process's one budget of test runs (`daemon.max_test_runs`) holds with several targets:
cycles on three real repositories at once, from threads, each wanting its baseline and its
candidate tested at the same time, never run more test commands at once than the limit, and
do reach it."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from overseer.core.plumbing.slots import TEST_SLOTS
from support.helpers import Harness, rows

# The targets' test command: says when it started and ended (one line each, appended in one
# write), waits until as many runs as the limit have been seen going at once (or a generous
# deadline), so that runs allowed to overlap do; holds a little longer, then runs pytest.
RUNNER = r"""
import os, subprocess, sys, time
log, limit = sys.argv[1], int(sys.argv[2])
me = f"{os.getpid()}:{os.getcwd()}"

def say(what):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{what} {time.time()} {me}\n".encode())
    os.close(fd)

def peak():
    going = most = 0
    for line in open(log).read().splitlines():
        going += 1 if line.startswith("start") else -1
        most = max(most, going)
    return most

say("start")
deadline = time.time() + 60
while time.time() < deadline and peak() < limit:
    time.sleep(0.05)
time.sleep(0.3)
code = subprocess.call([sys.executable, "-m", "pytest", "-q"])
say("end")
sys.exit(code)
"""

LIMIT = 2
TARGETS = 3


def spans(log: Path) -> list[tuple[float, float]]:
    """Each test command's (start, end), by its own clock."""
    seen: dict[str, list[float]] = {}
    for line in log.read_text().splitlines():
        _, at, who = line.split(" ", 2)
        seen.setdefault(who, []).append(float(at))
    assert all(len(times) == 2 for times in seen.values()), seen  # every run ended
    return [(times[0], times[1]) for times in seen.values()]


def most_at_once(runs: list[tuple[float, float]]) -> int:
    """The most runs going at the same moment (an end before a start at the same instant)."""
    moments = sorted([(start, 1) for start, _ in runs] + [(end, -1) for _, end in runs])
    going = most = 0
    for _, step in moments:
        going += step
        most = max(most, going)
    return most


@pytest.fixture
def targets(tmp_path, sample):
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    shared = tmp_path / "shared"  # where every target's runs write their log
    shared.mkdir()
    log = shared / "runs.log"
    command = f"{sys.executable} {script} {log} {LIMIT}"
    made = []
    for n in range(TARGETS):
        home = tmp_path / f"t{n}"
        home.mkdir()
        repo = sample.copy(home / "proj")
        made.append(
            Harness(
                home,
                repo,
                ruff_select=["F"],
                test_command=command,
                evaluate_concurrently=True,
                writable_paths=[str(shared)],
            )
        )
    TEST_SLOTS.set_limit(LIMIT)  # after the runtimes, which set the configured one (the cores)
    yield made, log
    for h in made:
        h.close()
    TEST_SLOTS.set_limit(None)


def test_cycles_on_several_targets_at_once_never_run_more_tests_than_the_limit(targets):
    harnesses, log = targets
    failures: list[BaseException] = []

    def cycle(h: Harness) -> None:
        try:
            h.cycle()
        except BaseException as exc:  # said in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=cycle, args=(h,)) for h in harnesses]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not any(t.is_alive() for t in threads), "a cycle did not finish in 10 minutes"
    assert not failures, failures

    for h in harnesses:
        [row] = rows(h.state_dir)
        assert row["status"] == "promoted", row["failure_reason"]
    runs = spans(log)
    # Each target: its baseline and its candidate, then the post-promotion watch.
    assert len(runs) == 3 * TARGETS
    assert most_at_once(runs) == LIMIT
