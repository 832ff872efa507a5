"""A pytest plugin overseer loads into the target's test run to profile one test
(`-p overseer_profile`, with OVERSEER_PROFILE_TEST, the test's JUnit id, and
OVERSEER_PROFILE_FILE set): that test's call runs under cProfile, and the hottest functions of
the project's own code — files of the working directory that are not tests, not a virtualenv
or site-packages — are written as JSON, the most cumulative time first:

    {"test": "tests.test_x::test_y", "hot": [{"file": "pkg/m.py", "line": 4,
     "function": "helper", "cumulative": 0.41, "own": 0.01, "calls": 1}, …]}

It changes nothing about the tests.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
from collections.abc import Iterator
from typing import Any

import pytest
from overseer_progress import junit_id  # type: ignore[import-not-found]  # beside it

_OUT = os.environ.get("OVERSEER_PROFILE_FILE")
_TEST = os.environ.get("OVERSEER_PROFILE_TEST")
_ROOT = os.getcwd()
TOP = 10


def _own(path: str) -> str | None:
    """The path relative to the working directory if it is the project's own code."""
    rel = os.path.relpath(path, _ROOT).replace(os.sep, "/")
    if rel.startswith("..") or not rel.endswith(".py"):
        return None
    parts = rel.split("/")
    name = parts[-1]
    if any(p.startswith(".") or p in ("tests", "test", "site-packages", "venv") for p in parts):
        return None
    if name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py":
        return None
    return rel


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
        # (file, line, name) → (primitive calls, calls, own time, cumulative time, callers)
        stats: Any = pstats.Stats(profile).stats  # type: ignore[attr-defined]
        hot = []
        for (file, line, name), (_, calls, own, cumulative, _) in stats.items():
            rel = _own(file)
            if rel is not None:
                hot.append(
                    {
                        "file": rel,
                        "line": line,
                        "function": name,
                        "cumulative": round(cumulative, 4),
                        "own": round(own, 4),
                        "calls": calls,
                    }
                )
        hot.sort(key=lambda h: (-h["cumulative"], h["file"], h["line"]))
        with open(_OUT, "w", encoding="utf-8") as f:
            json.dump({"test": _TEST, "hot": hot[:TOP]}, f)
