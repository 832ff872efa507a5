"""An external CI judges the pushed candidate branch, polled with back-off and a time limit."""

from __future__ import annotations

import json
import sys

import pytest

from support.helpers import Harness, git, rows

STATUS = """import json, os, sys
from pathlib import Path

counter = Path(os.environ["CI_COUNTER"])
n = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(n + 1))
Path(os.environ["CI_SEEN"]).open("a").write(os.environ["OVERSEER_BRANCH"] + " " + os.environ["OVERSEER_COMMIT"] + "\\n")
script = os.environ["CI_SCRIPT"].split(",")
print(script[min(n, len(script) - 1)])
"""


def ci_harness(tmp_path, repo, script: str, **ci):
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "--quiet", "origin", "main")
    (tmp_path / "status.py").write_text(STATUS)
    env = {
        "CI_COUNTER": str(tmp_path / "n"),
        "CI_SEEN": str(tmp_path / "seen"),
        "CI_SCRIPT": script,
    }
    h = Harness(
        tmp_path,
        repo,
        ruff_select=["F"],
        push="origin",
        env=env,
        ci={
            "status_command": f"{sys.executable} {tmp_path / 'status.py'}",
            "first_poll": 0.05,
            "max_poll": 0.2,
            **ci,
        },
    )
    return h, remote


@pytest.mark.usefixtures("warm_baseline")
def test_ci_polls_until_a_verdict_and_the_change_is_promoted(tmp_path, repo):
    h, remote = ci_harness(tmp_path, repo, "pending,running,pass")
    [attempt] = h.cycle().attempts
    h.close()
    assert attempt["status"] == "promoted", attempt["failure_reason"]
    polls = attempt["evaluation"]["ci"]["polls"]
    assert [p["status"] for p in polls] == ["pending", "pending", "pass"]
    # Each poll was also recorded as it happened (a crash while waiting loses none).
    recorded = [
        json.loads(e["detail"])
        for e in rows(tmp_path / "state", "phase_events")
        if e["kind"] == "CIPolled" and e["improvement_id"] == attempt["improvement_id"]
    ]
    assert [(r["poll"], r["status"]) for r in recorded][:3] == [
        (1, "pending"),
        (2, "pending"),
        (3, "pass"),
    ]
    seen = (tmp_path / "seen").read_text().splitlines()
    assert seen[0] == f"overseer/{attempt['improvement_id']} {attempt['git_commit_hash']}"
    assert git(remote, "rev-parse", "main") == attempt["git_commit_hash"]  # promoted and pushed
    assert git(remote, "branch", "--list", "overseer/*") == ""  # the CI copy is gone
    # The post-promotion watch asked CI about the target branch too.
    assert seen[-1] == f"main {attempt['git_commit_hash']}" and attempt["watch"]["verdict"] == "ok"


@pytest.mark.usefixtures("warm_baseline")
def test_a_ci_failure_fails_the_attempt(tmp_path, repo):
    h, remote = ci_harness(tmp_path, repo, "pending,fail")
    head = git(repo, "rev-parse", "main")
    [attempt] = h.cycle().attempts
    h.close()
    assert attempt["status"] == "failed"
    assert "CI reported fail after 2 poll(s)" in attempt["failure_reason"]
    assert git(repo, "rev-parse", "main") == head
    assert git(remote, "branch", "--list", "overseer/*") == ""


@pytest.mark.usefixtures("warm_baseline")
def test_no_verdict_in_time_fails_the_attempt(tmp_path, repo):
    h, _ = ci_harness(tmp_path, repo, "pending", timeout=0.5)
    [attempt] = h.cycle().attempts
    h.close()
    assert attempt["status"] == "failed"
    assert "CI gave no verdict within 0.5 s" in attempt["failure_reason"]
    polls = attempt["evaluation"]["ci"]["polls"]
    assert 2 <= len(polls) <= 6 and {p["status"] for p in polls} == {"pending"}


@pytest.mark.usefixtures("warm_baseline")
def test_a_junit_report_from_ci_is_read_test_by_test(tmp_path, repo):
    report = '<testsuite><testcase classname="tests.test_util" name="test_double"><failure message="boom"/></testcase><testcase classname="tests.test_util" name="test_double_negative"/></testsuite>'
    script = STATUS.replace(
        "print(script[min(n, len(script) - 1)])",
        f'Path("ci.xml").write_text({report!r})\nprint(json.dumps({{"status": "fail", "junit": "ci.xml"}}))',
    )
    h, _ = ci_harness(tmp_path, repo, "fail")
    (tmp_path / "status.py").write_text(script)
    [attempt] = h.cycle().attempts
    h.close()
    assert attempt["status"] == "failed"
    assert attempt["evaluation"]["new_failures"] == ["tests.test_util::test_double"]


def test_ci_needs_a_remote(tmp_path):
    import pytest
    from pydantic import ValidationError

    from overseer.config import TargetConfig

    with pytest.raises(ValidationError, match="ci needs push"):
        TargetConfig(path=tmp_path, ci={"status_command": "true"})
