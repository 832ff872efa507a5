"""EVALUATE: a candidate that breaks a test is never promoted, wherever the target's code is
installed from. A target's own .venv with the project installed in editable mode points at
the user's checkout; the candidate's tests must still run the candidate's code."""

from __future__ import annotations

import site
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import Harness, git, init_repo, rows

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


def test_a_candidate_that_deletes_a_passing_test_is_not_promoted():
    from overseer.core.evaluate import compare
    from overseer.core.testrun import TestCase, TestReport

    def report(cases):
        return TestReport("pytest", "x", 0, False, 1.0, "", True, cases)

    base = report({"t::a": TestCase("passed", 0.1), "t::b": TestCase("passed", 0.1)})
    fewer = report({"t::a": TestCase("passed", 0.1)})
    verdict = compare(base, fewer)
    assert not verdict.passed
    assert verdict.missing == ["t::b"]


def test_a_candidate_that_adds_a_failing_test_is_not_promoted():
    from overseer.core.evaluate import compare
    from overseer.core.testrun import TestCase, TestReport

    def report(cases):
        return TestReport("pytest", "x", 0, False, 1.0, "", True, cases)

    base = report({"t::a": TestCase("passed", 0.1)})
    more = report({"t::a": TestCase("passed", 0.1), "t::new": TestCase("failed", 0.1)})
    verdict = compare(base, more)
    assert not verdict.passed
    assert verdict.new_failures == ["t::new"]


def test_failures_already_at_the_base_are_not_held_against_the_candidate():
    from overseer.core.evaluate import compare
    from overseer.core.testrun import TestCase, TestReport

    base = TestReport(
        "pytest",
        "x",
        1,
        False,
        1.0,
        "",
        True,
        {"t::a": TestCase("failed", 0.1), "t::b": TestCase("passed", 0.1)},
    )
    same = TestReport(
        "pytest",
        "x",
        1,
        False,
        1.0,
        "",
        True,
        {"t::a": TestCase("failed", 0.1), "t::b": TestCase("passed", 0.1)},
    )
    worse = TestReport(
        "pytest",
        "x",
        1,
        False,
        1.0,
        "",
        True,
        {"t::a": TestCase("failed", 0.1), "t::b": TestCase("failed", 0.1)},
    )
    assert compare(base, same).passed
    assert compare(base, worse).new_failures == ["t::b"]


def test_without_per_test_reports_a_failing_suite_cannot_be_shown_harmless():
    from overseer.core.evaluate import compare
    from overseer.core.testrun import TestReport

    failing = TestReport("make test", "x", 2, False, 1.0, "", False, {})
    passing = TestReport("make test", "x", 0, False, 1.0, "", False, {})
    assert compare(passing, passing).passed
    assert not compare(passing, failing).passed
    verdict = compare(failing, failing)
    assert not verdict.passed and "no per-test report" in verdict.reasons[0]
