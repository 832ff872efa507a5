"""A pytest plugin overseer loads into the target's test run to profile one test
(`-p overseer_profile`, with OVERSEER_PROFILE_TEST, the test's JUnit id, and
OVERSEER_PROFILE_FILE set): that test's call runs under cProfile, and the hottest functions of
the project's own code (overseer_hot.py: files of the working directory that are not tests,
not a benchmark, not a virtualenv or site-packages) are written as JSON, the most cumulative
time first:

    {"test": "tests.test_x::test_y", "hot": [{"file": "pkg/m.py", "line": 4,
     "function": "helper", "cumulative": 0.41, "own": 0.01, "calls": 1}, …]}

It changes nothing about the tests.
"""

from __future__ import annotations

import cProfile
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from overseer_hot import hot_functions  # type: ignore[import-not-found]  # beside it
from overseer_progress import junit_id  # type: ignore[import-not-found]  # beside it

_OUT = os.environ.get("OVERSEER_PROFILE_FILE")
_TEST = os.environ.get("OVERSEER_PROFILE_TEST")
_ROOT = os.getcwd()
TOP = 10


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: Any) -> Iterator[None]:
    if not _OUT or junit_id(item.nodeid) != _TEST:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        hot = hot_functions(profile, _ROOT)
        with open(_OUT, "w", encoding="utf-8") as f:
            json.dump({"test": _TEST, "hot": hot[:TOP]}, f)
