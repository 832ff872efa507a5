"""The hottest functions of a project's own code in a cProfile profile, for the profile
plugin (one test, `overseer_profile`) and the profile hook (a benchmark command's Python
processes, `profile_hook/sitecustomize.py`). It runs in the target's interpreter, so it uses
the standard library only.

The project's own code: files under the root that are not tests, not a benchmark, not a
virtualenv or site-packages, nor hidden. A function is

    {"file": "pkg/m.py", "line": 4, "function": "helper", "cumulative": 0.41, "own": 0.01,
     "calls": 1}
"""

from __future__ import annotations

import cProfile
import os
import pstats
from collections.abc import Collection
from typing import Any

NOT_OWN_DIRS = ("tests", "test", "site-packages", "venv", "bench", "benchmark", "benchmarks")


def own(path: str, root: str, skip: Collection[str] = ()) -> str | None:
    """The path relative to `root` if it is the project's own code (and not in `skip`)."""
    if os.path.abspath(path) in skip:
        return None
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    if rel.startswith("..") or not rel.endswith(".py"):
        return None
    parts = rel.split("/")
    name = parts[-1]
    if any(p.startswith(".") or p in NOT_OWN_DIRS for p in parts):
        return None
    if name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py":
        return None
    return rel


def hot_functions(
    profile: cProfile.Profile, root: str, skip: Collection[str] = ()
) -> list[dict[str, Any]]:
    """The project's own functions in `profile`, the most cumulative time first."""
    # (file, line, name) → (primitive calls, calls, own time, cumulative time, callers)
    stats: Any = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    skipped = {os.path.abspath(p) for p in skip}
    hot = []
    for (file, line, name), (_, calls, own_time, cumulative, _) in stats.items():
        rel = own(file, root, skipped)
        if rel is not None:
            hot.append(
                {
                    "file": rel,
                    "line": line,
                    "function": name,
                    "cumulative": round(cumulative, 4),
                    "own": round(own_time, 4),
                    "calls": calls,
                }
            )
    return sorted(hot, key=lambda h: (-h["cumulative"], h["file"], h["line"]))
