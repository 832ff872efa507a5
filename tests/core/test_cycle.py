"""A real cycle on a real repository, not in dry-run: the foundation everything stands on."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from overseer.vocabulary import PHASES
from support.helpers import git, rows


def test_a_full_cycle_promotes_a_real_fix_and_records_everything(harness, repo):
    before = git(repo, "rev-parse", "main")

    result = harness.cycle()

    assert result.status == "ok", result.summary
    [attempt] = result.attempts
    iid = attempt["improvement_id"]
    # The target branch moved forward by exactly one overseer commit.
    head = git(repo, "rev-parse", "main")
    assert git(repo, "rev-parse", "main~1") == before
    subject = git(repo, "log", "-1", "--format=%s", "main")
    assert subject == "Autonomous improvement: quality: fix F401 (unused-import) in pkg/util.py"
    trailer = git(
        repo, "log", "-1", "--format=%(trailers:key=Overseer-Improvement-Id,valueonly)", "main"
    )
    assert trailer.strip() == iid
    assert git(repo, "log", "-1", "--format=%an <%ae>", "main") == "overseer <overseer@localhost>"
    # The fix is real: both unused imports are gone, and the checked-out tree followed the branch.
    fixed = (repo / "pkg/util.py").read_text()
    assert "import" not in fixed and fixed.endswith("def double(x):\n    return x * 2\n")
    assert git(repo, "status", "--porcelain") == ""

    [row] = rows(harness.state_dir)
    assert row["improvement_id"] == iid
    assert row["status"] == "promoted"
    assert row["git_commit_hash"] == head
    assert row["base_commit"] == before
    assert row["target_file"] == "pkg/util.py"
    assert row["change_type"] == "quality"
    assert row["risk_level"] == "low"
    assert row["was_deployed"] == 1 and row["was_rolled_back"] == 0
    assert row["tests_passed"] == 2 and row["tests_failed"] == 0
    assert 0 <= row["success_score"] <= 1
    assert row["generated_code"].startswith("--- a/pkg/util.py\n+++ b/pkg/util.py\n")
    assert "-import json\n" in row["generated_code"] and "-import os\n" in row["generated_code"]
    assert row["started_at"] <= row["completed_at"]
    assert row["rolled_back_at"] is None and row["performance_delta"] is None
    assert row["policy_version"].startswith("v1:")
    assert '"F401"' in row["analysis_results"]
    for phase in ("GENERATE", "SAFETY", "DEPLOY", "EVALUATE", "LEARN", "RECORD"):
        assert phase in row["phase_timings"]

    # Phase events, in order: ANALYZE for the cycle, then the six phases of the attempt.
    events = rows(harness.state_dir, "phase_events")
    finished = [e["phase"] for e in events if e["kind"] == "PhaseFinished"]
    assert finished == [p.value for p in PHASES]
    assert all(e["outcome"] == "ok" for e in events if e["kind"] == "PhaseFinished")
    # Each phase says how much of its time went to the target's tests, ruff and git.
    spent = {
        e["phase"]: (e["duration"], json.loads(e["detail"])["external_ms"])
        for e in events
        if e["kind"] == "PhaseFinished"
    }
    assert set(spent["ANALYZE"][1]) == {"tests", "ruff", "git"}
    assert set(spent["GENERATE"][1]) == {"ruff", "git"}
    assert set(spent["DEPLOY"][1]) == {"git"}
    assert {"tests", "git"} <= set(spent["EVALUATE"][1])
    assert spent["SAFETY"][1] == {} and spent["LEARN"][1] == {}
    for duration, external in spent.values():
        assert all(ms > 0 for ms in external.values())
        assert sum(external.values()) <= duration * 1000 + 1  # a part of the phase, no more
    kinds = [e["kind"] for e in events]
    # The first run on a state directory audits the autonomy level it found.
    assert kinds[0] == "AutonomyChanged" and kinds[1] == "CycleStarted"
    assert kinds[-1] == "CycleFinished"
    assert kinds.index("ChangePromoted") < kinds.index("AttemptFinished")

    # The repository's own tests still pass at the new HEAD.
    check = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout

    # Nothing of overseer's is left in the repository: no worktree, no branch.
    assert git(repo, "worktree", "list").count("\n") == 0
    assert git(repo, "branch", "--list", "overseer/*") == ""
    assert not any((harness.state_dir / "worktrees").rglob("*.py"))


def test_a_second_cycle_on_unchanged_head_reuses_the_baseline(harness, repo):
    first = harness.cycle(dry_run=True)
    assert not first.analysis.tests_cached
    second = harness.cycle(dry_run=True)
    assert second.analysis.tests_cached and second.analysis.lint_cached
    assert "cached tests and lint" in second.analysis.summary()


def test_after_a_promotion_the_next_cycle_analyses_the_new_head(harness, repo):
    harness.cycle()
    second = harness.cycle()
    assert second.analysis.commit == git(repo, "rev-parse", "main")
    assert not second.analysis.tests_cached
    # No F401 is left, so nothing to do: the cycle says so rather than inventing work.
    assert second.attempts == []
    assert "nothing to improve" in second.summary


def test_nothing_to_do_is_recorded_as_a_cycle_without_attempts(tmp_path):
    from support.helpers import Harness, init_repo

    clean = init_repo(
        tmp_path / "clean",
        {
            "m.py": "def f():\n    return 1\n",
            "test_m.py": "from m import f\n\n\ndef test_f():\n    assert f() == 1\n",
        },
    )
    h = Harness(tmp_path, clean, ruff_select=["F"])
    result = h.cycle()
    h.close()
    assert result.attempts == []
    [cycle] = rows(h.state_dir, "cycles")
    assert cycle["status"] == "ok"
    assert "nothing to improve" in cycle["summary"]
    assert '"passed": 1' in cycle["analysis"]


@pytest.mark.usefixtures("warm_baseline")
def test_benchmark_metrics_are_recorded_and_compared(tmp_path, repo):
    from support.helpers import Harness

    bench = f'{sys.executable} -c \'print("warming up"); print("{{\\"seconds\\": 2.0}}")\''
    h = Harness(tmp_path, repo, ruff_select=["F"], benchmark_command=bench)
    result = h.cycle()
    h.close()
    assert result.analysis.benchmark == {
        "ok": True,
        "metrics": {"seconds": 2.0},
        "duration": result.analysis.benchmark["duration"],
    }
    [row] = rows(h.state_dir)
    import json

    benchmark = json.loads(row["evaluation"])["benchmark"]
    assert benchmark["baseline"] == [2.0] * 5 and benchmark["candidate"] == [2.0] * 5  # 5 runs each
    assert benchmark["verdict"] == "no clear difference"
    assert row["performance_delta"] is None  # no effect: the delta stays empty, not 0 made up
    assert '"metrics": {"seconds": 2.0}' in row["analysis_results"]


@pytest.mark.usefixtures("warm_baseline")
def test_a_benchmark_that_prints_no_metrics_leaves_the_delta_empty(tmp_path, repo):
    from support.helpers import Harness

    h = Harness(tmp_path, repo, ruff_select=["F"], benchmark_command="echo fast enough")
    result = h.cycle()
    h.close()
    assert result.analysis.benchmark["ok"] is False
    assert "no JSON object of numeric metrics" in result.analysis.benchmark["error"]
    assert rows(h.state_dir)[0]["performance_delta"] is None
    assert result.attempts[0]["status"] == "promoted"


@pytest.mark.usefixtures("warm_baseline")
def test_promotion_pushes_to_the_configured_remote(tmp_path, repo):
    from support.helpers import Harness

    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "--quiet", "origin", "main")
    h = Harness(tmp_path, repo, ruff_select=["F"], push="origin")
    [attempt] = h.cycle().attempts
    h.close()
    assert attempt["status"] == "promoted"
    assert attempt["push_result"] == "pushed main to origin"
    assert git(remote, "rev-parse", "main") == attempt["git_commit_hash"]


@pytest.mark.usefixtures("warm_baseline")
def test_a_failed_push_is_recorded_and_the_promotion_stands(tmp_path, repo):
    from support.helpers import Harness

    git(repo, "remote", "add", "origin", str(tmp_path / "missing.git"))
    h = Harness(tmp_path, repo, ruff_select=["F"], push="origin")
    [attempt] = h.cycle().attempts
    h.close()
    assert attempt["status"] == "promoted"
    assert attempt["push_result"].startswith("push to origin failed")
    assert git(repo, "rev-parse", "main") == attempt["git_commit_hash"]


@pytest.mark.usefixtures("warm_baseline")
def test_area_performance_leaves_lint_alone(harness, repo):
    result = harness.cycle(area="performance")
    assert result.attempts == []
    assert all(f.area == "performance" for f in result.analysis.findings)


def test_several_changes_in_one_run_each_rebased_and_retested(tmp_path):
    from support.helpers import SAMPLE, Harness, init_repo

    repo = init_repo(
        tmp_path / "proj", {**SAMPLE, "pkg/other.py": "import sys\n\n\ndef one():\n    return 1\n"}
    )
    h = Harness(
        tmp_path, repo, policy="autonomy: limited\nmax_changes_per_run: 2\n", ruff_select=["F"]
    )
    result = h.cycle(max_changes=5)  # the policy's maximum wins
    h.close()
    assert [a["status"] for a in result.attempts] == ["promoted", "promoted"]
    assert git(repo, "rev-list", "--count", "main") == "3"
    second = result.attempts[1]
    assert second["base_commit"] == result.attempts[0]["git_commit_hash"]  # rebased onto the first
    assert git(repo, "status", "--porcelain") == ""


def test_the_same_code_in_two_targets_is_tried_in_each(tmp_path, repo, sample):
    """Two targets made from one template hold the same file: a change waiting for a decision
    on one does not keep the other from its own attempt (what was tried is per target)."""
    from overseer.config import TargetConfig
    from overseer.core.context import RunSettings
    from overseer.core.cycle import run_cycle
    from support.helpers import Harness

    twin = sample.copy(tmp_path / "twin")
    h = Harness(tmp_path, repo, ruff_select=["F"])
    targets = [*h.config.targets, TargetConfig(path=twin, name="twin", ruff_select=["F"])]
    h.config = h.config.model_validate({**h.config.model_dump(), "targets": targets})
    h.rt.config = h.config
    settings = RunSettings(dry_run=False, require_approval=True)
    try:
        first = run_cycle(h.rt.context(h.config.targets[0]), settings)
        second = run_cycle(h.rt.context(h.config.targets[1]), settings)
        # And the first target, with its change still waiting, does not try it again.
        again = run_cycle(h.rt.context(h.config.targets[0]), settings)
    finally:
        h.close()
    [mine] = first.attempts
    [theirs] = second.attempts
    assert mine["fingerprint"] == theirs["fingerprint"]
    assert (mine["target"], theirs["target"]) == ("proj", "twin")
    assert {r["status"] for r in rows(h.state_dir)} == {"awaiting_approval"}
    assert again.attempts == []
