"""Performance with its noise, and the post-promotion watch: regressions are reverted by the
system, or left for a human when the revert would conflict."""

from __future__ import annotations

import json
import random
import sys

from overseer.core import actions
from overseer.core.context import Actor
from overseer.core.evaluate.perf import compare_samples
from overseer.core.watch import watch_pending
from support.chat_server import Answer, ChatServer
from support.helpers import Harness, commit_file, git, init_repo, rows

UTIL = "import os\nimport time\n\n\ndef double(x):\n    return x * 2\n\n\ndef triple(x):\n    return x * 3\n"
TESTS = "from pkg.util import double, triple\n\n\ndef test_math():\n    assert double(2) == 4 and triple(2) == 6\n"
BENCH = """import json
import time

from pkg.util import double

start = time.perf_counter()
for _ in range(3):
    double(2)
# In steps of 10 ms: what these tests compare is either equal on both sides (no difference
# can be called) or 150 ms apart, never scheduler noise.
print(json.dumps({"seconds": 0.1 + round(time.perf_counter() - start, 2)}))
"""
SLOW_TRIPLE = {
    "target_file": "pkg/util.py",
    "change_type": "quality",
    "risk_level": "low",
    "impact": "spells out triple",
    "rationale": "clearer",
    "edits": [
        {"search": "    return x * 3\n", "replace": "    time.sleep(0.05)\n    return x * 3\n"}
    ],
}


def bench_repo(tmp_path):
    return init_repo(
        tmp_path / "proj",
        {
            "pkg/__init__.py": "",
            "pkg/util.py": UTIL,
            "tests/test_util.py": TESTS,
            "bench.py": BENCH,
        },
    )


def harness(tmp_path, repo, server, policy="autonomy: supervised\n", **target):
    return Harness(
        tmp_path,
        repo,
        policy=policy,
        ruff_select=["F401"],
        benchmark_command=f"{sys.executable} bench.py",
        **target,
    )._with_generators([server.generator(retries=0)])


def test_the_bootstrap_calls_only_what_clears_the_noise():
    noisy = compare_samples(
        [1.0, 1.3, 0.8, 1.1, 0.9], [1.05, 0.85, 1.25, 0.95, 1.1], "seconds", min_effect=2
    )
    assert noisy.verdict == "no clear difference" and noisy.performance_delta is None
    assert noisy.low < 0 < noisy.high
    slower = compare_samples(
        [1.0, 1.01, 0.99, 1.0, 1.02], [1.5, 1.52, 1.49, 1.51, 1.5], "seconds", min_effect=2
    )
    assert slower.verdict == "slower" and slower.performance_delta < -40 and slower.high < 0
    faster = compare_samples(
        [100, 101, 99, 100, 102], [150, 151, 149, 152, 150], "ops_per_s", min_effect=2
    )
    assert faster.verdict == "faster" and faster.performance_delta > 40  # higher is better here
    tiny = compare_samples([1.0, 1.0, 1.0, 1.0], [0.99, 0.99, 0.99, 0.99], "seconds", min_effect=2)
    assert tiny.verdict == "no clear difference"  # real, but smaller than min_effect
    assert compare_samples([1.0], [2.0], "seconds", min_effect=2).verdict == "unknown"


def test_noise_is_rarely_called_a_difference_and_a_real_one_is_found():
    """Pure noise (20 % spread) is called faster or slower at most about 5 % of the time; with
    3 runs a side never (too few to tell); a 30 % slowdown in 10 % noise is found."""
    rng = random.Random(7)

    def noise(n, scale=1.0, spread=0.2):
        return [scale * rng.lognormvariate(0, spread) for _ in range(n)]

    def called(n, trials):
        verdicts = [
            compare_samples(noise(n), noise(n), "seconds", min_effect=5).verdict
            for _ in range(trials)
        ]
        return sum(v != "no clear difference" for v in verdicts) / trials

    assert called(3, 40) == 0
    assert called(5, 150) <= 0.06
    found = [
        compare_samples(noise(5, spread=0.1), noise(5, 1.3, 0.1), "seconds", min_effect=5)
        for _ in range(40)
    ]
    assert sum(f.verdict == "slower" for f in found) >= 32
    assert all(f.p_value is not None and f.p_value >= 1 / 2001 for f in found)


def test_a_change_that_makes_the_benchmark_slower_is_not_promoted(tmp_path):
    repo = bench_repo(tmp_path)
    bench_triple = BENCH.replace("import double", "import double, triple").replace(
        "double(2)\n", "double(2)\n    triple(2)\n"
    )
    commit_file(repo, "bench.py", bench_triple, "measure triple too")
    head = git(repo, "rev-parse", "main")
    with ChatServer(default=Answer(json.dumps(SLOW_TRIPLE))) as server:
        h = harness(tmp_path, repo, server, policy="autonomy: full\n", benchmark_runs=4)
        [attempt] = h.cycle(require_approval=False).attempts
        h.close()
    assert attempt["status"] == "failed"
    assert (
        "slower (seconds" in attempt["failure_reason"]
        and "max_slowdown_percent=5" in attempt["failure_reason"]
    )
    assert attempt["evaluation"]["benchmark"]["verdict"] == "slower"
    assert git(repo, "rev-parse", "main") == head


def test_a_slowdown_that_shows_only_after_promotion_is_reverted_by_the_system(tmp_path):
    repo = bench_repo(tmp_path)
    with ChatServer(default=Answer(json.dumps(SLOW_TRIPLE))) as server:
        h = harness(tmp_path, repo, server, benchmark_runs=4)
        [waiting] = h.cycle().attempts
        # Evaluated against a benchmark that never calls triple(): within noise.
        assert waiting["status"] == "awaiting_approval"
        assert waiting["evaluation"]["benchmark"]["verdict"] == "no clear difference"
        # Meanwhile a developer makes the benchmark call triple() too...
        bench_triple = BENCH.replace("import double", "import double, triple").replace(
            "double(2)\n", "double(2)\n    triple(2)\n"
        )
        commit_file(repo, "bench.py", bench_triple, "measure triple too")
        # ...and the change, rebased and retested, is approved and promoted; the watch measures.
        after = actions.approve(h.context(), waiting["improvement_id"], Actor("alice", 1000))
        h.close()
    assert after["status"] == "rolled_back"
    assert after["rolled_back_by"] == "overseer (post-promotion watch)"
    assert after["rollback_reason"].startswith("regression after promotion: slower (seconds")
    assert after["watch"]["verdict"] == "regression; reverted"
    assert git(repo, "log", "-1", "--format=%s").startswith('Revert "Autonomous improvement')
    assert "time.sleep" not in (repo / "pkg/util.py").read_text()
    kinds = [e.kind for e in h.events]
    assert "RegressionFound" in kinds and "ChangeRolledBack" in kinds
    assert rows(tmp_path / "state", "outcomes")[0]["kept"] == 0  # learned: not kept


STRICT_TESTS = """import os
from pathlib import Path

from pkg import util


def test_double():
    assert util.double(2) == 4


def test_reexport_when_strict():
    if Path(os.environ["STRICT_FLAG"]).exists():
        assert util.json
"""


def test_a_regression_whose_revert_conflicts_is_left_for_a_human(tmp_path):
    util = "import json\n\n\ndef double(x):\n    return x * 2\n"
    repo = init_repo(
        tmp_path / "proj",
        {"pkg/__init__.py": "", "pkg/util.py": util, "tests/test_util.py": STRICT_TESTS},
    )
    flag = tmp_path / "strict"
    h = Harness(
        tmp_path,
        repo,
        ruff_select=["F401"],
        env={"STRICT_FLAG": str(flag)},
        watch_after_promotion=False,
    )
    [attempt] = h.cycle().attempts
    assert attempt["status"] == "promoted" and attempt["watch"] is None
    # Before the (delayed) check, the environment turns strict and a developer edits the same lines.
    flag.write_text("on")
    later = commit_file(
        repo, "pkg/util.py", "import sys\n\n\ndef double(x):\n    return x + x\n", "rewrite"
    )
    assert rows(tmp_path / "state", "outcomes")[0]["kept"] == 1  # learned when promoted
    ctx = h.context()
    with ctx.lock():
        checked = watch_pending(ctx)  # as at the next start: the delayed check
    row = h.history.get(attempt["improvement_id"])
    h.close()
    assert checked == [attempt["improvement_id"]]
    assert row["status"] == "regressed"
    assert rows(tmp_path / "state", "outcomes")[0]["kept"] == 0  # learned again: not kept
    assert "tests.test_util::test_reexport_when_strict" in row["failure_reason"]
    assert "It was not reverted" in row["failure_reason"] and "conflicts" in row["failure_reason"]
    assert git(repo, "rev-parse", "main") == later  # nothing forced
    found = [e for e in h.events if e.kind == "RegressionFound"]
    assert found and found[0].action == "needs a human"


def test_promotions_a_killed_run_never_checked_are_checked_at_the_next_start(tmp_path, repo):
    h = Harness(tmp_path, repo, ruff_select=["F"], watch_after_promotion=False)
    [attempt] = h.cycle().attempts
    assert attempt["watch"] is None
    h.close()
    again = Harness(tmp_path, repo, ruff_select=["F"])  # the watch is on again
    again.cycle()
    row = again.history.get(attempt["improvement_id"])
    again.close()
    assert row["watch"]["verdict"] == "ok" and row["status"] == "promoted"


def test_a_test_command_that_cannot_start_after_promotion_reverts_nothing(tmp_path, repo):
    """Between the promotion and its (delayed) check the test command goes missing: no
    evidence either way, so the promoted change stays, and the check says why it was skipped."""
    flag = tmp_path / "gone"
    command = f"if [ -e {flag} ]; then exit 127; fi; {sys.executable} -m pytest"
    h = Harness(
        tmp_path, repo, ruff_select=["F"], watch_after_promotion=False, test_command=command
    )
    [attempt] = h.cycle().attempts
    assert attempt["status"] == "promoted"
    flag.write_text("")
    ctx = h.context()
    with ctx.lock():
        checked = watch_pending(ctx)
    row = h.history.get(attempt["improvement_id"])
    h.close()
    assert checked == [attempt["improvement_id"]]
    assert row["status"] == "promoted" and row["watch"]["verdict"] == "skipped"
    assert "the test command could not run" in row["watch"]["why"]
    assert git(repo, "rev-parse", "main") == attempt["git_commit_hash"]
