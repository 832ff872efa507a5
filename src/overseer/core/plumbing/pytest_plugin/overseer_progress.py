"""A pytest plugin overseer loads into the target's test run (`-p overseer_progress`).

It changes nothing about the tests. Driven by environment variables:
- OVERSEER_PROGRESS_FILE: `total N` once collected, then one `done` line per finished test.
- OVERSEER_NODEIDS_FILE: one `<junit id>\\t<node id>` line per collected test, so a failing
  test seen in the JUnit report can be run again by its node id.
- OVERSEER_ONLY_FILE: node ids, one per line: only these tests run (the others are
  deselected), for re-running failures to tell a flaky test from a broken one. A line that
  names a file (`tests/test_x.py`) selects every test in it (a new test file, proved alone).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the target's own pytest runs this plugin: nothing imported at run time
    import pytest

_FDS: dict[
    str, int
] = {}  # path -> a descriptor kept open: one write per test, not an open and a close


def _append(env: str, lines: list[str]) -> None:
    path = os.environ.get(env)
    if path and lines:
        fd = _FDS.get(path)
        if fd is None:
            fd = _FDS[path] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(fd, "".join(line + "\n" for line in lines).encode("utf-8"))


def junit_id(nodeid: str) -> str:
    """The `classname::name` pytest's JUnit report gives the test with this node id."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]) + "::" + names[-1]


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    only = os.environ.get("OVERSEER_ONLY_FILE")
    if not only:
        return
    with open(only, encoding="utf-8") as f:
        wanted = {line.strip() for line in f if line.strip()}
    chosen = [i.nodeid in wanted or i.nodeid.split("::")[0] in wanted for i in items]
    keep = [i for i, yes in zip(items, chosen, strict=True) if yes]
    drop = [i for i, yes in zip(items, chosen, strict=True) if not yes]
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep


def pytest_collection_finish(session: pytest.Session) -> None:
    _append("OVERSEER_PROGRESS_FILE", [f"total {len(session.items)}"])
    _append("OVERSEER_NODEIDS_FILE", [f"{junit_id(i.nodeid)}\t{i.nodeid}" for i in session.items])


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _append("OVERSEER_PROGRESS_FILE", ["done"])
