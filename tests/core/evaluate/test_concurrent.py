"""A lint finding's baseline and candidate tested at the same time (issue 18): the two test
commands overlap, judged from the times they recorded; the process's limit of test runs holds;
a baseline that cannot be evaluated promotes nothing and is the target's problem."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import pytest

from overseer.config import TargetConfig
from overseer.core import analyze
from overseer.core.evaluate.concurrent import decide
from overseer.core.plumbing.slots import TEST_SLOTS, TestSlots
from overseer.core.plumbing.testrun import TestCase, TestReport, resolve_test_command
from overseer.render import show_attempt
from support.helpers import Harness, git, rows

# The target's test command: says when it started and ended, in which tree; waits (a little)
# for another test command to start, so that two allowed to run at once do; then pytest.
RUNNER = r"""
import os, subprocess, sys, time, pathlib
log = pathlib.Path(sys.argv[1])
with log.open("a") as f:
    f.write(f"start {time.time()} {os.getcwd()}\n")
deadline = time.time() + 3
while time.time() < deadline and log.read_text().count("start") < 2:
    time.sleep(0.05)
if sys.argv[2:] == ["broken-baseline"] and "baseline-" in os.getcwd():
    code = 4  # pytest's usage error: the baseline's run cannot be evaluated
else:
    code = subprocess.call([sys.executable, "-m", "pytest", "-q"])
with log.open("a") as f:
    f.write(f"end {time.time()} {os.getcwd()}\n")
sys.exit(code)
"""


def runs(log: Path) -> dict[str, tuple[float, float]]:
    """Each evaluation's test command (the baseline's and the candidate's; not the watch's,
    which runs once the change is promoted): when it started and ended, by its own clock."""
    seen: dict[str, list[float]] = {}
    for line in log.read_text().splitlines():
        _, at, where = line.split(" ", 2)
        if "/watch-" not in where:
            seen.setdefault(where, []).append(float(at))
    return {where: (times[0], times[1]) for where, times in seen.items()}


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@pytest.fixture
def concurrent(tmp_path, repo):
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    shared = tmp_path / "shared"  # where the runs write their log: beside their worktrees
    shared.mkdir()
    log = shared / "runs.log"
    made = []

    def make(*extra: str) -> Harness:
        command = f"{sys.executable} {script} {log} {' '.join(extra)}".strip()
        h = Harness(
            tmp_path,
            repo,
            ruff_select=["F"],
            test_command=command,
            evaluate_concurrently=True,
            writable_paths=[str(shared)],
        )
        made.append(h)
        return h

    yield make, log
    for h in made:
        h.close()
    TEST_SLOTS.set_limit(None)


def test_the_baseline_and_the_candidate_are_tested_at_once_and_the_change_promotes(
    concurrent, repo
):
    make, log = concurrent
    harness = make()
    TEST_SLOTS.set_limit(2)
    before = git(repo, "rev-parse", "main")

    result = harness.cycle()

    assert result.status == "ok", result.summary
    [row] = rows(harness.state_dir)
    assert row["status"] == "promoted", row["failure_reason"]
    assert git(repo, "rev-parse", "main~1") == before
    # The decision and why, with the cycle's analysis and the attempt's evaluation.
    evaluation = json.loads(row["evaluation"])
    record = evaluation["concurrency"]
    assert record["concurrent"] is True and record["reason"] == "evaluate_concurrently: true"
    # The two test commands overlapped: by the times overseer recorded, and by their own.
    spans = {
        side: tuple(
            datetime.fromisoformat(record[side][k]).timestamp() for k in ("started", "finished")
        )
        for side in ("baseline", "candidate")
    }
    assert overlap(spans["baseline"], spans["candidate"])
    own = runs(log)
    assert len(own) == 2 and overlap(*own.values())
    assert evaluation["baseline"]["passed"] == 2
    # The baseline's progress is said under EVALUATE, told apart from the candidate's (its
    # counts in the words: the phase's done/total are the candidate's run).
    said = [
        (e.phase, e.message, e.done)
        for e in harness.events
        if e.kind == "PhaseProgress" and "running tests at" in e.message
    ]
    assert said and all(
        phase == "EVALUATE" and message.startswith("baseline: ") and done is None
        for phase, message, done in said
    ), said
    # The baseline, run with the candidate's, is cached for the next cycle, and so are the
    # features looked for in its tree (which the next cycle on that commit would look for).
    assert json.loads(row["analysis_results"])["concurrency"]["concurrent"] is True
    command = resolve_test_command(harness.config.targets[0], repo)
    features = f"{analyze.FEATURES_KEY}:{command.key}"
    key = harness.context().target.key
    assert harness.history.get_baseline(key, before, analyze.tests_key(command)) is not None
    assert harness.history.get_baseline(key, before, features) == {"findings": []}


def test_the_limit_of_test_runs_is_never_exceeded(concurrent, repo):
    make, log = concurrent
    harness = make()
    TEST_SLOTS.set_limit(1)

    result = harness.cycle()

    [row] = rows(harness.state_dir)
    assert row["status"] == "promoted", (result.summary, row["failure_reason"])
    own = runs(log)
    assert len(own) == 2 and not overlap(*own.values())


def test_a_baseline_that_cannot_be_evaluated_while_the_candidate_runs_promotes_nothing(
    concurrent, repo
):
    make, log = concurrent
    harness = make("broken-baseline")
    TEST_SLOTS.set_limit(2)
    before = git(repo, "rev-parse", "main")

    result = harness.cycle()

    assert result.status == "failed"
    assert git(repo, "rev-parse", "main") == before
    [row] = rows(harness.state_dir)
    # As when ANALYZE finds it: the target's problem, not held against the change.
    assert row["status"] == "error"
    assert "cannot be evaluated" in row["failure_reason"]
    assert "not held against the change" in row["failure_reason"]
    kinds = [e.kind for e in harness.events]
    assert "TargetNotEvaluable" in kinds
    assert overlap(*runs(log).values())


def test_a_red_baseline_is_judged_at_once_as_when_it_runs_first(tmp_path, sample):
    """The baseline has a failing test that the lint fix makes pass: run first or next to the
    candidate, the attempt comes out the same."""
    outcomes = {}
    TEST_SLOTS.set_limit(2)
    try:
        for at_once in (False, True):
            home = tmp_path / f"at-once-{at_once}"
            home.mkdir()
            repo = sample.copy(home / "proj")
            (repo / "tests" / "test_tidy.py").write_text(
                "import pkg.util\n\n\ndef test_util_imports_only_what_it_uses():\n"
                "    assert not hasattr(pkg.util, 'json')\n"
            )
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", "a test the baseline fails")
            harness = Harness(home, repo, ruff_select=["F"], evaluate_concurrently=at_once)
            try:
                result = harness.cycle()
            finally:
                harness.close()
            [row] = rows(harness.state_dir)
            evaluation = json.loads(row["evaluation"])
            outcomes[at_once] = (
                row["status"],
                row["tests_passed"],
                row["tests_failed"],
                evaluation["passed"],
                evaluation["fixed"],
                evaluation["new_failures"],
                evaluation["reasons"],
            )
            assert (evaluation.get("concurrency") or {}).get("concurrent", False) is at_once
            assert row["status"] == "promoted", (result.summary, row["failure_reason"])
    finally:
        TEST_SLOTS.set_limit(None)
    assert outcomes[True] == outcomes[False]
    assert outcomes[True][4] == ["tests.test_tidy::test_util_imports_only_what_it_uses"]


@pytest.mark.parametrize(
    ("setting", "limit", "running", "cores", "busy", "memory", "expected", "why"),
    [
        (True, 1, 1, 1, 9.0, 1.0, True, "evaluate_concurrently: true"),
        (False, 64, 0, 64, 0.0, 1e6, False, "evaluate_concurrently: false"),
        ("auto", 2, 0, 2, 0.1, 1e6, True, "auto: 1.9 of 2 cores idle as given, 2 of 2 test"),
        ("auto", 1, 0, 8, 0.0, 1e6, False, "auto: 1 of 1 test slots free (daemon.max_test_runs)"),
        ("auto", 4, 3, 8, 0.0, 1e6, False, "auto: 1 of 4 test slots free"),
        ("auto", 2, 0, 2, 1.0, 1e6, False, "auto: 1.0 of 2 cores idle as given, fewer than 1.5"),
        ("auto", 8, 0, 8, 1.0, 1000.0, False, "auto: 1000 MB available, fewer than the 8192 MB"),
    ],
)
def test_auto_wants_two_free_test_slots_an_idle_core_and_the_memory_for_two_runs(
    setting, limit, running, cores, busy, memory, expected, why
):
    config = TargetConfig(path=Path("."), evaluate_concurrently=setting)
    slots = TestSlots(limit)
    with ExitStack() as held:
        for _ in range(running):
            held.enter_context(slots.slot())
        go, reason = decide(config, slots=slots, cores=cores, busy=busy, available_mb=memory)
    assert go is expected and reason.startswith(why), reason


def test_auto_measures_the_machine_when_not_told():
    go, reason = decide(TargetConfig(path=Path(".")), slots=TestSlots(2))
    # Whatever this machine's load, the decision says what it saw.
    assert reason.startswith("auto: ") and ("idle" in reason) and isinstance(go, bool), reason


def test_auto_keeps_the_baseline_first_when_the_last_tests_had_findings(tmp_path, repo):
    harness = Harness(tmp_path, repo, ruff_select=["F"], evaluate_concurrently="auto")
    try:
        cfg = harness.config.targets[0]
        key = analyze.tests_key(resolve_test_command(cfg, repo))
        earlier = TestReport(
            "pytest",
            "python",
            1,
            False,
            1.0,
            "",
            True,
            cases={"tests/test_x.py::test_x": TestCase("failed", 0.1, "tests/test_x.py", "boom")},
        )
        harness.history.put_baseline(harness.context().target.key, "e" * 40, key, earlier.to_dict())

        result = harness.cycle()

        [row] = rows(harness.state_dir)
        assert row["status"] == "promoted", (result.summary, row["failure_reason"])
        record = json.loads(row["analysis_results"])["concurrency"]
        assert record == {
            "concurrent": False,
            "reason": "the tests at eeeeeee had 1 failing, flaky or slow test(s): "
            "the baseline first",
        }
        shown = show_attempt(harness.history.get(row["improvement_id"]), [], [])
        assert "test runs     one after the other: the tests at eeeeeee had 1 failing" in shown
    finally:
        harness.close()


@pytest.mark.parametrize(
    ("earlier", "why"),
    [
        (None, "this test command has not run on this target before: the baseline first"),
        (
            TestReport("no-such-command", "", 127, False, 0.1, "not found", False),
            "the tests at eeeeeee could not be evaluated: the baseline first",
        ),
    ],
)
def test_auto_runs_the_baseline_first_until_the_test_command_has_worked_here(
    tmp_path, repo, earlier, why
):
    """A test command that cannot run must be a red ANALYZE that records no attempt, not a
    candidate's not-evaluable run: under auto, the tests go at once only after this command
    was seen to work on this target (whatever the machine's load)."""
    harness = Harness(tmp_path, repo, ruff_select=["F"], evaluate_concurrently="auto")
    try:
        if earlier is not None:
            cfg = harness.config.targets[0]
            key = analyze.tests_key(resolve_test_command(cfg, repo))
            harness.history.put_baseline(
                harness.context().target.key, "e" * 40, key, earlier.to_dict()
            )
        harness.cycle()
        [row] = rows(harness.state_dir)
        record = json.loads(row["analysis_results"])["concurrency"]
        assert record == {"concurrent": False, "reason": why}
    finally:
        harness.close()
