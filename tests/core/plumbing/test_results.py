"""The plugin's results file says, test by test, what pytest's own JUnit XML report says.

overseer reads a run's per-test outcomes from `overseer_progress`'s results file instead of
pytest's `--junitxml` report (which cost 70–90 ms on a suite of 800 tests). Both are written by
one real pytest run here, over a suite with every outcome the reader tells apart, and read back:
they must agree on every test's id, outcome, time, file and message — alone, and under xdist.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.helpers import write_files

from overseer.core.plumbing.testrun import PLUGIN_DIR, parse_junit, parse_results

SUITE = {
    "conftest.py": (
        "import pytest\n\n\n"
        "@pytest.fixture\n"
        "def broken_setup():\n"
        "    raise RuntimeError('no database <here> & there')\n\n\n"
        "@pytest.fixture\n"
        "def broken_teardown():\n"
        "    yield\n"
        "    raise OSError('teardown went wrong')\n"
    ),
    "tests/test_outcomes.py": (
        "import pytest\n\n\n"
        "def test_passes():\n"
        "    print('some output')\n\n\n"
        "def test_fails():\n"
        "    assert 1 == 2, 'a message\\nover two lines, \\x1b[31mcoloured\\x1b[0m, \\U0001F600'\n\n\n"
        "def test_raises_bare():\n"
        "    raise ValueError()\n\n\n"
        "def test_setup_error(broken_setup):\n"
        "    pass\n\n\n"
        "def test_teardown_error(broken_teardown):\n"
        "    pass\n\n\n"
        "def test_fails_and_teardown_error(broken_teardown):\n"
        "    assert False\n\n\n"
        "def test_skips():\n"
        "    pytest.skip('not here')\n\n\n"
        "@pytest.mark.skipif(True, reason='never on this machine')\n"
        "def test_skipif():\n"
        "    pass\n\n\n"
        "@pytest.mark.xfail(reason='known bug')\n"
        "def test_xfails():\n"
        "    assert False\n\n\n"
        "def test_xfails_imperatively():\n"
        "    pytest.xfail('not yet')\n\n\n"
        "@pytest.mark.xfail(reason='fixed already')\n"
        "def test_xpasses():\n"
        "    pass\n\n\n"
        "@pytest.mark.xfail(reason='must fail', strict=True)\n"
        "def test_xpasses_strictly():\n"
        "    pass\n\n\n"
        "@pytest.mark.parametrize('value', ['a[b]', 'x::y', 'ünï', 'tab\\t', '', 7])\n"
        "def test_params(value):\n"
        "    assert value != 7\n\n\n"
        "class TestGroup:\n"
        "    def test_method(self):\n"
        "        pass\n\n"
        "    class TestNested:\n"
        "        def test_inner(self):\n"
        "            assert [1] == [2]\n"
    ),
    "tests/deeper/test_no_package.py": "def test_deep():\n    pass\n",
    "tests/test_syntax_error.py": "def test_x(:\n    pass\n",
    "tests/test_import_error.py": "import not_a_module_anywhere\n",
    "tests/test_module_skip.py": (
        "import pytest\n\npytest.skip('whole module', allow_module_level=True)\n"
    ),
}


@pytest.mark.parametrize("workers", [None, 2], ids=["alone", "xdist"])
def test_the_results_file_says_what_junit_says(tmp_path: Path, workers: int | None) -> None:
    write_files(tmp_path / "suite", SUITE)
    junit, results = tmp_path / "junit.xml", tmp_path / "results.json"
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "overseer_progress",
    ]
    args += [f"--junitxml={junit}", "-o", "junit_family=xunit1", "--continue-on-collection-errors"]
    if workers:
        args += ["-p", "xdist", "-n", str(workers)]
    env = {
        **os.environ,
        "PYTHONPATH": str(PLUGIN_DIR),
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "OVERSEER_RESULTS_FILE": str(results),
    }
    env.pop("PYTEST_ADDOPTS", None)
    run = subprocess.run(args, cwd=tmp_path / "suite", env=env, capture_output=True, text=True)
    assert run.returncode == 1, run.stdout + run.stderr
    expected, got = parse_junit(junit), parse_results(results)
    assert expected is not None and got is not None
    assert len(expected) == 24, sorted(expected)  # 20 tests, 4 files that did not load
    assert got == expected
    # The reader tells these apart: each outcome is there.
    outcomes = {case.outcome for case in got.values()}
    assert outcomes == {"passed", "failed", "error", "skipped", "xfailed", "collection_error"}


def test_no_results_file_is_no_report(tmp_path: Path) -> None:
    assert parse_results(tmp_path / "absent.json") is None
    (tmp_path / "torn.json").write_text('[["tests.test_x", "test_a", "tests/test_x.py", "0.1"')
    assert parse_results(tmp_path / "torn.json") is None
    (tmp_path / "odd.json").write_text('{"not": "a list of records"}')
    assert parse_results(tmp_path / "odd.json") is None
