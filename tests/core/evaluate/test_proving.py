"""New tests that prove themselves, through whole cycles with a scripted model server: ANALYZE
runs the suite under coverage.py and finds the module with lines no test runs; the model's new
test file is kept only if it collects, passes `reliability_runs` times in a row, raises the
module's coverage and asserts something; one that edits an existing test is denied; and the
funnel is counted by the real `overseer stats`."""

from __future__ import annotations

import json

from support.chat_server import Answer, ChatServer
from support.helpers import Harness, git, init_repo, overseer

SHAPES = '''"""Shapes."""


def area(width, height):
    return width * height


def describe(width, height):
    if width == height:
        return "square"
    if width > height:
        return "wide"
    return "tall"
'''
TESTS = """from geo.shapes import area


def test_area():
    assert area(2, 3) == 6
"""
FILES = {
    "pyproject.toml": "[project]\nname = 'geo'\nversion = '0'\n",
    "src/geo/__init__.py": "",
    "src/geo/shapes.py": SHAPES,
    "tests/test_shapes.py": TESTS,
    ".gitignore": "__pycache__/\n.runs\n",
}
NEW = "tests/test_shapes_coverage.py"

GOOD = """from geo.shapes import describe


def test_square():
    assert describe(2, 2) == "square"


def test_wide_and_tall():
    assert describe(3, 1) == "wide"
    assert describe(1, 3) == "tall"
"""
# Runs the lines, checks nothing.
EMPTY = """from geo.shapes import describe


def test_describe_runs():
    describe(2, 2)
    describe(3, 1)
"""
# Passes on its first runs, then fails on every fourth: a count kept in a file it writes.
FLAKY = """from pathlib import Path

from geo.shapes import describe

COUNT = Path(__file__).parent / ".runs"


def test_square_sometimes():
    n = int(COUNT.read_text()) if COUNT.exists() else 0
    COUNT.write_text(str(n + 1))
    assert describe(2, 2) == "square"
    assert n % 4 != 2
"""
# Passes every time, asserts something, runs no line that was not run already.
NO_GAIN = """from geo.shapes import area


def test_area_again():
    assert area(4, 5) == 20
"""


def reply(*edits: dict[str, str]) -> Answer:
    return Answer(
        json.dumps(
            {
                "target_file": NEW,
                "change_type": "quality",
                "risk_level": "low",
                "impact": "describe is tested",
                "rationale": "no test ran describe",
                "edits": list(edits),
            }
        )
    )


def new_file(text: str, path: str = NEW) -> dict[str, str]:
    return {"file": path, "search": "", "replace": text}


def cycle(tmp_path, answers, policy="autonomy: full\n", runs=5):
    repo = init_repo(tmp_path / "proj", FILES)
    h = Harness(
        tmp_path,
        repo,
        policy=policy,
        ruff_select=["F"],
        flaky_reruns=1,
        watch_after_promotion=False,
        new_tests={"enabled": True, "reliability_runs": runs},
    )
    with ChatServer(answers=answers) as server:
        h._with_generators([server.generator(timeout=5, retries=0, repair_rounds=0)])
        result = h.cycle(area="quality", max_changes=1)
        requests = list(server.requests)
    h.close()
    return repo, result, requests


def test_a_new_test_that_raises_coverage_is_kept(tmp_path):
    repo, result, [request] = cycle(tmp_path, [reply(new_file(GOOD))])
    [attempt] = result.attempts
    assert attempt["finding_kind"] == "uncovered_code"
    assert attempt["status"] == "promoted", attempt["failure_reason"]
    assert attempt["change_type"] == "test"
    proof = attempt["evaluation"]["proof"]
    assert proof["tests"] == [NEW]
    assert (proof["collected"], proof["reliable"], proof["raised"]) == (True, True, True)
    assert proof["passed_runs"] == 5 and proof["collected_tests"] == 2
    assert proof["newly_covered"] == [9, 10, 11, 12, 13]
    assert proof["covered_after"] == 100.0 > proof["covered_before"]
    assert (repo / NEW).read_text() == GOOD
    assert (repo / "tests/test_shapes.py").read_text() == TESTS
    assert git(repo, "status", "--porcelain") == ""
    # What the model was asked: the module, its uncovered function, and the new file's name.
    prompt = request["messages"][1]["content"]
    assert "Finding: uncovered_code in src/geo/shapes.py" in prompt
    assert "describe (lines 9, 10, 11, 12, 13)" in prompt
    assert f"Write a NEW pytest test file {NEW}" in prompt
    assert "import the code as `geo.shapes`" in prompt

    stats = overseer("stats", "--state-dir", str(tmp_path / "state"))
    assert stats.returncode == 0, stats.stderr
    assert (
        "New tests (generated → collected → passed reliably → raised coverage → approved → kept)"
        in stats.stdout
    )
    assert "  llm        1 → 1 → 1 → 1 → 1 → 1" in stats.stdout


def test_a_new_test_waits_for_approval_under_supervision(tmp_path):
    repo, result, _ = cycle(tmp_path, [reply(new_file(GOOD))], policy="autonomy: supervised\n")
    [attempt] = result.attempts
    assert attempt["status"] == "awaiting_approval", attempt["failure_reason"]
    assert attempt["evaluation"]["proof"]["raised"] is True
    assert not (repo / NEW).exists()


def test_a_new_test_that_asserts_nothing_is_refused(tmp_path):
    repo, result, _ = cycle(tmp_path, [reply(new_file(EMPTY))])
    [attempt] = result.attempts
    assert attempt["status"] == "denied"
    assert (
        f"oracle: a test change adds {NEW}::test_describe_runs that assert(s) nothing"
        in attempt["failure_reason"]
    )
    assert not (repo / NEW).exists()


def test_a_flaky_new_test_is_refused_for_reliability(tmp_path):
    repo, result, _ = cycle(tmp_path, [reply(new_file(FLAKY))])
    [attempt] = result.attempts
    assert attempt["status"] == "failed"
    proof = attempt["evaluation"]["proof"]
    assert proof["collected"] is True and proof["reliable"] is False
    assert proof["passed_runs"] == 1  # the suite's run was the first; the third fails
    assert (
        "the new tests are not reliable: they passed 1 run(s) in a row, then failed on run 2 of 5"
        in (attempt["failure_reason"])
    )
    assert not (repo / NEW).exists()


def test_a_new_test_that_raises_no_coverage_is_refused(tmp_path):
    repo, result, _ = cycle(tmp_path, [reply(new_file(NO_GAIN))], runs=2)
    [attempt] = result.attempts
    assert attempt["status"] == "failed"
    proof = attempt["evaluation"]["proof"]
    assert proof["reliable"] is True and proof["raised"] is False
    assert "the new tests raise no coverage of src/geo/shapes.py" in attempt["failure_reason"]
    assert not (repo / NEW).exists()


def test_a_new_test_that_edits_an_existing_test_is_denied(tmp_path):
    edit = {
        "file": "tests/test_shapes.py",
        "search": "    assert area(2, 3) == 6\n",
        "replace": '    assert area(2, 3) == 6\n    assert describe(2, 2) == "square"\n',
    }
    repo, result, _ = cycle(tmp_path, [reply(new_file(GOOD), edit)])
    [attempt] = result.attempts
    assert attempt["status"] == "denied"
    assert (
        "oracle: a test change edits the existing test tests/test_shapes.py: new tests may only "
        "add new test files" in attempt["failure_reason"]
    )
    assert (repo / "tests/test_shapes.py").read_text() == TESTS


def module(lines: int) -> str:
    """A module whose `grow` runs `lines` statements no test runs (and `one`, which one does)."""
    body = "    y = x + 1\n" + "    y = y + 1\n" * (lines - 2) + "    return y\n"
    return f"def one():\n    return 1\n\n\ndef grow(x):\n{body}"


def test_the_funnel_counts_every_stage_through_the_cli(tmp_path):
    """Four modules with lines no test runs, the most uncovered first, one attempt a cycle:
    denied (asserts nothing), failed for reliability, failed for coverage, kept."""
    files = {k: v for k, v in FILES.items() if "shapes" not in k}
    sizes = {"m4": 6, "m3": 5, "m2": 4, "m1": 3}
    for name, lines in sizes.items():
        files[f"src/geo/{name}.py"] = module(lines)
    files["tests/test_one.py"] = (
        "".join(f"from geo.{name} import one as one_{name}\n" for name in sizes)
        + "\n\ndef test_one():\n"
        + "".join(f"    assert one_{name}() == 1\n" for name in sizes)
    )
    repo = init_repo(tmp_path / "proj", files)

    def test_of(name: str, text: str) -> dict[str, str]:
        text = text.replace("geo.shapes", f"geo.{name}").replace("describe(2, 2)", "grow(1)")
        text = text.replace('== "square"', ">= 2").replace("import describe", "import grow")
        return new_file(text, f"tests/test_{name}_coverage.py")

    quiet = "def test_runs():\n    from geo.m4 import grow\n\n    grow(1)\n"
    answers = [
        reply(new_file(quiet, "tests/test_m4_coverage.py")),
        reply(test_of("m3", FLAKY)),
        reply(
            new_file(
                NO_GAIN.replace("geo.shapes import area", "geo.m2 import one").replace(
                    "area(4, 5) == 20", "one() == 1"
                ),
                "tests/test_m2_coverage.py",
            )
        ),
        reply(
            test_of(
                "m1",
                "from geo.shapes import describe\n\n\ndef test_grow():\n    assert describe(2, 2) == 3\n",
            )
        ),
    ]
    # Three refusals in a row would pause the target, or make the next change wait for a
    # person (its predicted success is low): not what this test is about.
    policy = (
        "autonomy: full\nlimits: {per_hour: 10, circuit_breaker: 0}\n"
        "success: {medium_below: 0, high_below: 0, approval_below: 0}\n"
    )
    h = Harness(
        tmp_path,
        repo,
        policy=policy,
        ruff_select=["F"],
        flaky_reruns=1,
        watch_after_promotion=False,
        new_tests={"enabled": True, "reliability_runs": 3},
    )
    with ChatServer(answers=answers) as server:
        h._with_generators([server.generator(timeout=5, retries=0, repair_rounds=0)])
        statuses, reasons = [], []
        for _ in range(len(answers)):  # the server takes them from the list
            [attempt] = h.cycle(area="quality").attempts
            statuses.append((attempt["target_file"], attempt["status"]))
            reasons.append(attempt["failure_reason"] or "")
    h.close()
    assert statuses == [
        ("tests/test_m4_coverage.py", "denied"),
        ("tests/test_m3_coverage.py", "failed"),
        ("tests/test_m2_coverage.py", "failed"),
        ("tests/test_m1_coverage.py", "promoted"),
    ]
    assert "assert(s) nothing" in reasons[0]
    assert "not reliable" in reasons[1] and "raise no coverage" in reasons[2]
    state = str(tmp_path / "state")
    data = json.loads(overseer("stats", "--json", "--state-dir", state).stdout)
    assert data["new_tests"] == {
        "llm": {
            "generated": 4,
            "collected": 3,
            "reliable": 2,
            "raised_coverage": 1,
            "approved": 1,
            "kept": 1,
            "denied": 1,
            "waiting": 0,
        }
    }
    text = overseer("stats", "--state-dir", state).stdout
    assert "  llm        4 → 3 → 2 → 1 → 1 → 1 · 1 denied by SAFETY" in text
