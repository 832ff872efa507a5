"""Profiled speed-ups, through whole cycles with a scripted model server: a slow test, or a
benchmark that got slower over the commits, is profiled once and the prompt names the
project's hot function (not the test, not the benchmark); a genuinely faster candidate is
judged faster by the interleaved measurement and promoted; a no-op is not called faster and is
refused."""

from __future__ import annotations

import json
import shlex
import sys

from overseer.core import actions
from overseer.core.context import Actor
from support.chat_server import Answer, ChatServer
from support.helpers import Harness, commit_file, init_repo

WORK = '''"""Work."""

import time


def wait():
    time.sleep(0.25)
    return 42


def compute():
    return wait()
'''
TESTS = """from lib.work import compute


def test_compute():
    assert compute() == 42
"""
FILES = {
    "pyproject.toml": "[project]\nname = 'lib'\nversion = '0'\n",
    "src/lib/__init__.py": "",
    "src/lib/work.py": WORK,
    "tests/test_work.py": TESTS,
    ".gitignore": "__pycache__/\n",
}
FASTER = {"file": "src/lib/work.py", "search": "    time.sleep(0.25)\n", "replace": ""}
NO_OP = {"file": "src/lib/work.py", "search": "    return 42\n", "replace": "    return 6 * 7\n"}


def reply(edit: dict[str, str]) -> Answer:
    return Answer(
        json.dumps(
            {
                "target_file": "src/lib/work.py",
                "change_type": "optimization",
                "risk_level": "low",
                "impact": "compute is faster",
                "rationale": "the profile says wait is where the time goes",
                "edits": [edit],
            }
        )
    )


def cycle(tmp_path, edit):
    repo = init_repo(tmp_path / "proj", FILES)
    h = Harness(
        tmp_path,
        repo,
        policy="autonomy: full\nareas: [quality, performance]\n",
        ruff_select=["F"],
        flaky_reruns=0,
        watch_after_promotion=False,
        slow_test_seconds=0.2,
        benchmark_runs=4,
    )
    with ChatServer(answers=[reply(edit)]) as server:
        h._with_generators([server.generator(timeout=5, retries=0, repair_rounds=0)])
        result = h.cycle(area="performance")
        requests = list(server.requests)
    h.close()
    return repo, result, requests


def test_the_prompt_names_the_hot_function_and_a_faster_candidate_is_promoted(tmp_path):
    repo, result, [request] = cycle(tmp_path, FASTER)
    [attempt] = result.attempts
    assert attempt["finding_kind"] == "slow_test"
    hot = attempt["finding"]["details"]["hot"]
    assert sorted(h["function"] for h in hot) == ["compute", "wait"]
    assert {h["file"] for h in hot} == {"src/lib/work.py"}  # not the test, not the library
    prompt = request["messages"][1]["content"]
    section = prompt[prompt.index("Profiled once with cProfile") :].split("Make these faster")[0]
    assert "- wait (src/lib/work.py:6)" in section
    assert "test_compute" not in section and "sleep" not in section
    assert "Code under test — File src/lib/work.py" in prompt

    assert attempt["status"] == "promoted", attempt["failure_reason"]
    bench = attempt["evaluation"]["benchmark"]
    assert bench["verdict"] == "faster" and bench["metric"] == "seconds"
    assert len(bench["baseline"]) == len(bench["candidate"]) == 4
    assert attempt["performance_delta"] > 50
    assert "time.sleep" not in (repo / "src/lib/work.py").read_text()


def test_a_no_op_candidate_is_not_called_faster(tmp_path):
    repo, result, _ = cycle(tmp_path, NO_OP)
    [attempt] = result.attempts
    assert attempt["status"] == "failed"
    assert attempt["evaluation"]["benchmark"]["verdict"] != "faster"
    assert attempt["performance_delta"] is None
    assert "tests.test_work::test_compute is not faster beyond noise" in attempt["failure_reason"]
    assert (repo / "src/lib/work.py").read_text() == WORK


# -- a benchmark regression -------------------------------------------------------------------

# The benchmark times `compute`; the test checks `double` only, so that the test does not get
# slower with the benchmark (a slow_regression of its own).
BENCH_WORK = WORK + "\n\ndef double(x):\n    return 2 * x\n"
BENCH_FILES = {
    **FILES,
    "src/lib/work.py": BENCH_WORK.replace("    time.sleep(0.25)\n", ""),
    "tests/test_work.py": "from lib.work import double\n\n\ndef test_double():\n    assert double(2) == 4\n",
    "bench/run.py": """import json
import time

from lib.work import compute

start = time.perf_counter()
assert compute() == 42
print(json.dumps({"seconds": time.perf_counter() - start}))
""",
}


def test_a_benchmark_regression_is_profiled_a_no_op_is_not_faster_a_faster_change_is(tmp_path):
    """Three analysed commits where the benchmark is quick, then one where `wait` sleeps: a
    benchmark regression. The model's first answer changes nothing that matters; retried, its
    second removes the sleep."""
    repo = init_repo(tmp_path / "proj", BENCH_FILES)
    h = Harness(
        tmp_path,
        repo,
        policy="autonomy: full\nareas: [quality, performance]\n",
        ruff_select=["F"],
        flaky_reruns=0,
        watch_after_promotion=False,
        benchmark_command=f"{shlex.quote(sys.executable)} bench/run.py",
        benchmark_runs=4,
        benchmark_min_effect=10,
    )
    with ChatServer(answers=[reply(NO_OP), reply(FASTER)]) as server:
        h._with_generators([server.generator(timeout=5, retries=0, repair_rounds=0)])
        for n in range(3):
            commit_file(repo, f"notes{n}.txt", "x\n", f"commit {n}")
            found = h.cycle(area="performance", max_changes=0).analysis.findings
            assert [f.kind for f in found] == []
        commit_file(repo, "src/lib/work.py", BENCH_WORK, "wait a while")
        [no_op] = h.cycle(area="performance").attempts
        actions.retry(h.history, h.rt.bus, no_op["improvement_id"], Actor.current(), "again")
        [faster] = h.cycle(area="performance").attempts
        first, _ = server.requests
    h.close()

    assert no_op["finding_kind"] == "benchmark_regression"
    finding = no_op["finding"]
    assert "the benchmark's seconds got worse" in finding["message"]
    assert "(median of 3 earlier commits since" in finding["message"]
    assert finding["file"] == "src/lib/work.py"  # the hottest function's, what to change
    hot = {h["function"]: h for h in finding["details"]["hot"]}
    assert {"compute", "wait"} <= set(hot)
    assert {h["file"] for h in hot.values()} == {"src/lib/work.py"}  # not bench/run.py
    assert hot["wait"]["cumulative"] >= 0.2
    prompt = first["messages"][1]["content"]
    section = prompt[prompt.index("Profiled once with cProfile") :].split("Make these faster")[0]
    assert "while the benchmark runs" in section
    assert "- wait (src/lib/work.py:6)" in section and "- compute (src/lib/work.py:11)" in section
    assert "run.py" not in section and "sleep" not in section
    assert "do not edit the benchmark" in prompt

    assert no_op["status"] == "failed"
    assert no_op["evaluation"]["benchmark"]["verdict"] != "faster"
    assert no_op["performance_delta"] is None
    assert "the benchmark's seconds is not faster beyond noise" in no_op["failure_reason"]

    assert faster["finding_kind"] == "benchmark_regression"
    assert faster["status"] == "promoted", faster["failure_reason"]
    bench = faster["evaluation"]["benchmark"]
    assert bench["verdict"] == "faster" and bench["metric"] == "seconds"
    assert len(bench["baseline"]) == len(bench["candidate"]) == 4
    assert faster["performance_delta"] > 50
    assert "time.sleep" not in (repo / "src/lib/work.py").read_text()
