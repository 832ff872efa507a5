"""The flaky-test guard: a test that flips when run again is neither broken nor fixed by a
change — it is recorded as flaky."""

from __future__ import annotations

from support.helpers import Harness, git, init_repo

UTIL = "import json\n\n\ndef double(x):\n    return x * 2\n"
# Fails every other run, whatever the code: a counter outside the repository says which run.
FLAKY = """import os
from pathlib import Path

from pkg.util import double


def test_double():
    assert double(2) == 4


def test_flips():
    counter = Path(os.environ["FLIP_FILE"])
    n = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(n + 1))
    assert n % 2 == 0, f"run {n} fails"
"""


def flaky_repo(tmp_path):
    # The counter's directory, which the confined test runs are let write in (writable_paths).
    (tmp_path / "shared").mkdir()
    return init_repo(
        tmp_path / "proj", {"pkg/__init__.py": "", "pkg/util.py": UTIL, "tests/test_util.py": FLAKY}
    )


def flaky_harness(tmp_path, repo, **target) -> Harness:
    """A cycle on the flaky repository whose runs count in the shared directory."""
    shared = tmp_path / "shared"
    return Harness(
        tmp_path,
        repo,
        ruff_select=["F401"],
        env={"FLIP_FILE": str(shared / "flips")},
        writable_paths=[str(shared)],
        **target,
    )


def test_a_test_that_fails_every_other_run_is_not_counted_against_the_change(tmp_path):
    repo = flaky_repo(tmp_path)
    h = flaky_harness(tmp_path, repo)
    result = h.cycle()
    h.close()
    [attempt] = result.attempts
    # Run 0 (the baseline) passed; run 1 (the candidate) failed; run 2 (its re-run) passed;
    # then the post-promotion check: run 3 failed, run 4 (its re-run) passed.
    assert (tmp_path / "shared" / "flips").read_text() == "5"
    assert attempt["status"] == "promoted", attempt["failure_reason"]
    assert attempt["watch"]["verdict"] == "ok" and attempt["watch"]["flaky"] == [
        "tests.test_util::test_flips"
    ]
    evaluation = attempt["evaluation"]
    assert evaluation["flaky"] == ["tests.test_util::test_flips"]
    assert evaluation["new_failures"] == [] and evaluation["fixed"] == []
    assert attempt["tests_failed"] == 0
    assert "1 flaky (not counted)" in next(
        e.summary for e in h.events if e.kind == "PhaseFinished" and e.phase == "EVALUATE"
    )


def test_without_re_runs_the_same_flip_would_block_the_change(tmp_path):
    repo = flaky_repo(tmp_path)
    h = flaky_harness(tmp_path, repo, flaky_reruns=0)
    [attempt] = h.cycle().attempts
    h.close()
    assert attempt["status"] == "failed"
    assert "tests.test_util::test_flips" in attempt["failure_reason"]


def test_a_flaky_baseline_failure_is_not_credited_as_fixed_and_becomes_a_finding(tmp_path):
    repo = flaky_repo(tmp_path)
    (tmp_path / "shared" / "flips").write_text(
        "1"
    )  # the baseline run is an odd one: it fails, then passes
    h = flaky_harness(tmp_path, repo)
    result = h.cycle()
    h.close()
    assert result.analysis.tests.flaky == ["tests.test_util::test_flips"]
    assert [f.kind for f in result.analysis.findings if f.kind.endswith("_test")] == ["flaky_test"]
    assert "1 flaky" in result.analysis.summary()
    [attempt] = result.attempts
    assert attempt["evaluation"]["fixed"] == []
    assert git(repo, "status", "--porcelain") == ""


def test_a_test_that_became_slower_over_commits_is_a_finding(tmp_path):
    from support.helpers import commit_file

    repo = init_repo(
        tmp_path / "proj",
        {
            "pkg/__init__.py": "",
            "pkg/util.py": UTIL.replace("import json\n", ""),
            "tests/test_util.py": "from pkg.util import double\n\n\ndef test_double():\n    assert double(2) == 4\n",
        },
    )
    h = Harness(tmp_path, repo, ruff_select=["F401"])
    for n in range(3):  # three commits where the test is quick
        commit_file(repo, f"notes{n}.txt", "x\n", f"commit {n}")
        assert not [
            f for f in h.cycle(max_changes=0).analysis.findings if f.kind == "slow_regression"
        ]
    commit_file(
        repo,
        "pkg/util.py",
        "import time\n\n\ndef double(x):\n    time.sleep(0.3)\n    return x * 2\n",
        "slow",
    )
    analysis = h.cycle(max_changes=0).analysis
    h.close()
    [found] = [f for f in analysis.findings if f.kind == "slow_regression"]
    assert found.area == "performance" and found.file == "tests/test_util.py"
    assert "tests.test_util::test_double became slower:" in found.message
    assert "(median of 3 earlier commits since" in found.message
    assert found.score > 0  # ranked with the others
