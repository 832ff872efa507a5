"""EVALUATE: a candidate that breaks a test is never promoted, wherever the target's code is
installed from. A target's own .venv with the project installed in editable mode points at
the user's checkout; the candidate's tests must still run the candidate's code."""

from __future__ import annotations

import site
import subprocess
import sys
from pathlib import Path

import pytest

from overseer.core.safety.policy import Risk
from support.adversarial import LEVELS
from support.helpers import Harness, git, init_repo, rows

# The module re-exports `json` without using it: ruff's F401 fix removes the import, and the
# test that relies on the re-export breaks. A real, deterministic breaking candidate.
UTIL = "import json\n\n\ndef double(x):\n    return x * 2\n"
TESTS = """from pkg import util


def test_double():
    assert util.double(2) == 4


def test_reexport():
    assert util.json.dumps([1]) == "[1]"
"""
SETUP_PY_PROJECT = """[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "pkg"
version = "0.1.0"

[tool.setuptools.packages.find]
where = ["{where}"]
include = ["pkg*"]
"""


def make_target(root: Path, layout: str) -> Path:
    prefix = "src/" if layout == "src" else ""
    files = {
        "pyproject.toml": SETUP_PY_PROJECT.format(where="src" if layout == "src" else "."),
        f"{prefix}pkg/__init__.py": "",
        f"{prefix}pkg/util.py": UTIL,
        "tests/test_util.py": TESTS,
        ".gitignore": ".venv/\n__pycache__/\n*.egg-info/\nbuild/\n",
    }
    repo = init_repo(root, files)
    # The target's own .venv, with the project installed in editable mode (a real PEP 660
    # install by pip), and pytest importable from overseer's environment.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(repo / ".venv")], check=True)
    target_site = next((repo / ".venv/lib").glob("python3*/site-packages"))
    (target_site / "borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(repo / ".venv/bin/python"),
            "install",
            "-qq",
            "--no-build-isolation",
            "--no-deps",
            "--no-index",
            "-e",
            str(repo),
        ],
        check=True,
    )
    assert git(repo, "status", "--porcelain") == ""
    return repo


def editable_points_at(repo: Path) -> str:
    out = subprocess.run(
        [str(repo / ".venv/bin/python"), "-P", "-c", "import pkg.util; print(pkg.util.__file__)"],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@pytest.mark.parametrize(
    ("layout", "test_command"),
    [
        ("src", None),  # default: the target's .venv/bin/python -m pytest
        ("flat", ".venv/bin/python -P -m pytest"),  # -P: the current directory is not on sys.path
    ],
)
def test_a_candidate_that_breaks_a_test_is_not_promoted(tmp_path, layout, test_command):
    repo = make_target(tmp_path / f"proj-{layout}", layout)
    # The premise: outside our worktrees, `import pkg` finds the user's checkout.
    assert editable_points_at(repo).startswith(str(repo))
    before = git(repo, "rev-parse", "main")

    h = Harness(tmp_path, repo, ruff_select=["F401"], test_command=test_command)
    result = h.cycle()
    h.close()

    [attempt] = result.attempts
    assert attempt["status"] == "failed", attempt["failure_reason"]
    assert "tests.test_util::test_reexport" in attempt["failure_reason"]
    assert attempt["was_deployed"] == 0
    assert git(repo, "rev-parse", "main") == before
    assert git(repo, "branch", "--list", "overseer/*") == ""
    assert git(repo, "status", "--porcelain") == ""
    assert ".venv" in result.analysis.tests.interpreter or test_command
    [row] = rows(h.state_dir)
    assert row["tests_failed"] == 1 and row["tests_passed"] == 1
    assert '"new_failures": ["tests.test_util::test_reexport"]' in row["evaluation"]


def report(cases: dict[str, str], returncode: int = 0, *, junit: bool = True):
    """A test run's report, as parsed from JUnit: test id → outcome."""
    from overseer.core.plumbing.testrun import TestCase, TestReport

    return TestReport(
        "pytest",
        "x",
        returncode,
        False,
        1.0,
        "collected 0 items\n",
        junit,
        {test: TestCase(outcome, 0.1, "tests/test_x.py") for test, outcome in cases.items()},
    )


def test_a_candidate_that_deletes_a_passing_test_is_not_promoted():
    from overseer.core.evaluate.compare import compare

    verdict = compare(report({"t::a": "passed", "t::b": "passed"}), report({"t::a": "passed"}))
    assert not verdict.passed
    assert verdict.lost == {"t::b": "absent"}


@pytest.mark.parametrize("outcome", ["skipped", "xfailed"])
def test_a_passing_test_that_is_skipped_or_xfailed_on_the_candidate_is_lost(outcome):
    """179 passed + 1 skipped against 180 passed is not a pass."""
    from overseer.core.evaluate.compare import compare

    base = {f"t::{n}": "passed" for n in range(180)}
    verdict = compare(report(base), report({**base, "t::7": outcome}))
    assert not verdict.passed
    assert verdict.lost == {"t::7": outcome}
    assert f"1 test(s) that passed before did not pass: t::7 ({outcome})" in verdict.reasons


def test_tests_skipped_at_the_base_may_stay_skipped():
    from overseer.core.evaluate.compare import compare

    cases = {"t::a": "passed", "t::b": "skipped", "t::c": "xfailed"}
    assert compare(report(cases), report(cases)).passed


def test_a_candidate_that_adds_a_failing_test_is_not_promoted():
    from overseer.core.evaluate.compare import compare

    verdict = compare(report({"t::a": "passed"}), report({"t::a": "passed", "t::new": "failed"}, 1))
    assert not verdict.passed
    assert verdict.new_failures == verdict.added_failing == ["t::new"]
    # Called new, not a test that passed before (it did not exist).
    assert verdict.reasons == ["1 new test(s) the change added fail: t::new"]


def test_each_failing_test_is_said_as_what_it_was_at_the_base():
    from overseer.core.evaluate.compare import compare

    base = report({"t::a": "passed", "t::s": "skipped"})
    verdict = compare(base, report({"t::a": "failed", "t::s": "failed", "t::n": "failed"}, 1))
    assert verdict.new_failures == ["t::a", "t::n", "t::s"] and verdict.added_failing == ["t::n"]
    assert verdict.reasons == [
        "1 test(s) fail that passed before: t::a",
        "1 new test(s) the change added fail: t::n",
        "1 test(s) fail that did not fail before: t::s (skipped before)",
    ]


def test_failures_already_at_the_base_are_not_held_against_the_candidate():
    from overseer.core.evaluate.compare import compare

    base = report({"t::a": "failed", "t::b": "passed"}, 1)
    assert compare(base, base).passed
    worse = compare(base, report({"t::a": "failed", "t::b": "failed"}, 1))
    assert worse.new_failures == ["t::b"] and not worse.passed


@pytest.mark.parametrize(
    ("after", "returncode", "flaky", "passed", "outcome"),
    [
        ("passed", 0, [], True, "passed"),
        ("failed", 1, [], False, "failed"),
        ("xfailed", 0, [], False, "xfailed"),  # still marked: strictly, the mark goes too
        ("failed", 1, ["t::feature"], False, "flaky"),  # passed only when run again
        (None, 0, [], False, "absent"),
    ],
)
def test_a_feature_passes_only_when_its_xfail_test_now_passes(
    after, returncode, flaky, passed, outcome
):
    from overseer.core.evaluate.compare import compare

    base = report({"t::a": "passed", "t::feature": "xfailed"})
    candidate = report({"t::a": "passed", **({"t::feature": after} if after else {})}, returncode)
    candidate.flaky = flaky
    verdict = compare(base, candidate, required=["t::feature"])
    assert verdict.passed is passed
    assert verdict.required == {"t::feature": outcome}
    assert verdict.new_failures == []  # it did not pass before: said by `required` alone
    if not passed:
        assert verdict.reasons == [
            "the test(s) this feature is for did not pass without their xfail mark: "
            f"t::feature ({outcome})"
        ]
    assert ("1 of 1 feature test(s) passed" in verdict.summary()) is passed
    # Passing the feature's test makes up for no other test lost.
    broken = compare(
        base, report({"t::a": "failed", "t::feature": "passed"}, 1), required=["t::feature"]
    )
    assert not broken.passed and broken.new_failures == ["t::a"]


@pytest.mark.parametrize(
    ("candidate", "why"),
    [
        (report({}, 5), "no tests were collected"),
        (report({}, 0), "no tests were collected"),
        (
            report({"tests.test_x": "collection_error"}, 2),
            "could not be collected: tests/test_x.py",
        ),
        (report({"t::a": "passed"}, 3), "internal error"),
        (report({"t::a": "passed"}, 4), "usage error"),
        (report({}, 127, junit=False), "was not found (exit status 127)"),
        (report({}, 0, junit=False), "wrote no per-test report"),
        (report({}, -9, junit=False), "killed by signal 9"),
    ],
)
def test_no_evaluation_no_promotion(candidate, why):
    """A run that did not run tests is no evidence, on either side."""
    from overseer.core.evaluate.compare import compare

    good = report({"t::a": "passed"})
    for base, cand, side in ((good, candidate, "candidate"), (candidate, good, "baseline")):
        verdict = compare(base, cand)
        assert not verdict.passed
        assert f"the {side}'s test run cannot be evaluated" in verdict.reasons[0]
        assert why in verdict.reasons[0]
    # Two runs that both ran nothing are the old way an empty suite promoted anything.
    assert not compare(candidate, candidate).passed


def test_min_tests_sets_how_much_must_run():
    from overseer.core.evaluate.compare import compare

    two = report({"t::a": "passed", "t::b": "passed"})
    assert not compare(two, two, min_tests=3).passed
    assert "only 2 test(s) ran, fewer than min_tests=3" in compare(two, two, min_tests=3).reasons[0]
    assert compare(report({}, 5), report({}, 5), min_tests=0).passed  # said on purpose


# -- the same through real cycles on real repositories --------------------------------------

LIB = "import os\n\n\ndef double(x):\n    return x * 2\n"
LIB_TEST = "from lib import double\n\n\ndef test_double():\n    assert double(2) == 4\n"


@pytest.mark.parametrize(("level", "policy"), LEVELS, ids=[level for level, _ in LEVELS])
def test_a_repository_whose_tests_cannot_be_collected_promotes_nothing(tmp_path, level, policy):
    """A test file with a syntax error: pytest runs nothing. The ruff fix that breaks the real
    test must not be promoted, at any level, and the finding must not be held against the
    change."""
    import yaml

    repo = init_repo(
        tmp_path / "proj",
        {"lib.py": LIB, "tests/test_lib.py": LIB_TEST, "tests/test_broken.py": "def test_(:\n"},
    )
    head = git(repo, "rev-parse", "main")
    h = Harness(tmp_path, repo, policy=yaml.safe_dump(policy), ruff_select=["F401"])
    result = h.cycle()
    h.close()
    assert result.status == "failed" and result.attempts == []
    assert "cannot be evaluated: 1 test file(s) could not be collected: tests/test_broken.py" in (
        result.summary
    )
    [analyze] = [e for e in h.events if e.kind == "PhaseFinished" and e.phase == "ANALYZE"]
    assert analyze.outcome == "failed" and "tests/test_broken.py" in analyze.summary
    assert git(repo, "rev-parse", "main") == head
    assert rows(h.state_dir) == []  # nothing settled, nothing counted by the breaker


@pytest.mark.parametrize(
    ("files", "test_command", "why"),
    [
        ({"lib.py": LIB}, None, "no tests were collected"),
        ({"lib.py": LIB, "tests/test_lib.py": LIB_TEST}, "no-such-command --flag", "not found"),
        ({"lib.py": LIB, "tests/test_lib.py": LIB_TEST}, "true", "wrote no per-test report"),
    ],
)
def test_a_suite_that_does_not_run_is_not_a_pass(tmp_path, files, test_command, why):
    repo = init_repo(tmp_path / "proj", files)
    head = git(repo, "rev-parse", "main")
    h = Harness(
        tmp_path, repo, policy="autonomy: full\n", ruff_select=["F401"], test_command=test_command
    )
    result = h.cycle()
    h.close()
    assert result.attempts == [] and why in result.summary, result.summary
    assert git(repo, "rev-parse", "main") == head


def test_min_tests_zero_lets_a_repository_without_tests_take_lint_fixes(tmp_path):
    repo = init_repo(tmp_path / "proj", {"lib.py": LIB})
    h = Harness(tmp_path, repo, policy="autonomy: full\n", ruff_select=["F401"], min_tests=0)
    result = h.cycle()
    h.close()
    [attempt] = result.attempts
    assert attempt["status"] == "promoted", attempt["failure_reason"]


def test_a_change_that_makes_a_passing_test_skip_is_not_promoted(tmp_path):
    """The static guard cannot see it (the test file is untouched): the evaluation does."""
    from overseer.core.generate.candidate import Candidate, Edit

    repo = init_repo(
        tmp_path / "proj",
        {
            "lib.py": LIB,
            "tests/test_lib.py": "import pytest\n\nimport lib\n\n\n"
            "def test_double():\n    if getattr(lib, 'SKIP', False):\n        pytest.skip('off')\n"
            "    assert lib.double(2) == 4\n\n\ndef test_other():\n    assert True is not False\n",
        },
    )
    head = git(repo, "rev-parse", "main")

    class SkipsATest:
        name = "adversary"

        def can_handle(self, finding):
            return True

        def generate(self, finding, tree):
            edit = Edit("lib.py", "import os\n", "SKIP = True\n")
            return [
                Candidate(
                    generator=self.name,
                    finding=finding,
                    change_type="quality",
                    stated_risk=Risk.LOW,
                    summary="drop an import",
                    impact="",
                    rationale="",
                    edits=[edit],
                )
            ]

    h = Harness(
        tmp_path, repo, policy="autonomy: full\nfull_max_auto_risk: high\n", ruff_select=["F401"]
    )
    ctx = h.context()
    ctx.generators = [SkipsATest()]
    from overseer.core.context import RunSettings
    from overseer.core.cycle import run_cycle

    result = run_cycle(ctx, RunSettings(dry_run=False, require_approval=False))
    h.close()
    [attempt] = result.attempts
    assert attempt["status"] == "failed"
    assert "tests.test_lib::test_double (skipped)" in attempt["failure_reason"]
    assert git(repo, "rev-parse", "main") == head


def test_a_test_command_that_cannot_start_on_the_candidate_is_not_held_against_it(tmp_path, repo):
    """The baseline is cached; then the environment changes and the test command is not found
    when the candidate is tested (simulated: it exits 127 once the fix removed the import).
    Not the change's fault: an error, nothing settled or counted, said like a target that
    cannot be evaluated, and the cached baseline dropped so the next ANALYZE sees it."""
    python = sys.executable
    command = (
        f"if grep -q 'import json' pkg/util.py; then {python} -m pytest; "
        "else echo 'sh: pytest: not found' >&2; exit 127; fi"
    )
    h = Harness(tmp_path, repo, policy="autonomy: full\n", ruff_select=["F"], test_command=command)
    try:
        result = h.cycle()
        again = h.cycle()
    finally:
        h.close()
    [attempt] = result.attempts
    assert attempt["status"] == "error", attempt["failure_reason"]
    assert "the test command could not run on the candidate" in attempt["failure_reason"]
    assert result.status == "failed"
    said = next(e for e in h.events if e.kind == "TargetNotEvaluable")
    assert "exit status 127" in said.reason and "pytest: not found" in said.output
    assert rows(h.state_dir, "outcomes") == []  # nothing learned against the change
    assert h.history.paused() is None
    # The next cycle measures the baseline again (not from the cache) and proposes the same
    # change again: it was not settled.
    assert not again.analysis.tests_cached
    [retried] = again.attempts
    assert retried["fingerprint"] == attempt["fingerprint"] and retried["status"] == "error"
