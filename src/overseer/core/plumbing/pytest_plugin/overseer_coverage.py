"""A pytest plugin overseer loads into the target's test run under coverage.py
(`-p overseer_coverage`, with OVERSEER_COVERAGE_FILE set): it starts measuring as pytest loads
it, before any conftest or test module imports the project, and at the end writes, for each
file of the working directory that ran, its statements and the ones that never ran:

    {"files": {"pkg/util.py": {"statements": [1, 2, 5], "missing": [5]}}}

or `{"error": "…"}` when coverage.py cannot be imported by the interpreter that runs the
tests. It changes nothing about the tests.
"""

from __future__ import annotations

import json
import os
from typing import Any

_OUT = os.environ.get("OVERSEER_COVERAGE_FILE")
_ROOT = os.getcwd()
_COV: Any = None


def _write(data: dict[str, Any]) -> None:
    if _OUT:
        with open(_OUT, "w", encoding="utf-8") as f:
            json.dump(data, f)


if _OUT:
    try:
        import coverage
    except ImportError:
        _write({"error": "coverage.py is not installed for the interpreter that runs the tests"})
    else:
        _COV = coverage.Coverage(data_file=None, source=[_ROOT], config_file=False)
        _COV.start()


def pytest_unconfigure(config: Any) -> None:
    global _COV
    cov, _COV = _COV, None
    if cov is None:
        return
    cov.stop()
    files: dict[str, dict[str, list[int]]] = {}
    for path in sorted(cov.get_data().measured_files()):
        rel = os.path.relpath(path, _ROOT)
        if rel.startswith("..") or not rel.endswith(".py"):
            continue
        try:
            _, statements, _, missing, _ = cov.analysis2(path)
        except Exception:  # a file that went away, or is not Python after all
            continue
        files[rel.replace(os.sep, "/")] = {"statements": statements, "missing": missing}
    _write({"files": files})
