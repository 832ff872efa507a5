"""A pytest plugin overseer loads into the target's test run (`-p overseer_progress`).

It changes nothing about the tests. Driven by environment variables:
- OVERSEER_PROGRESS_FILE: `total N` once collected, then one `done` line per finished test.
- OVERSEER_NODEIDS_FILE: one `<junit id>\\t<node id>` line per collected test, so a failing
  test seen in the JUnit report can be run again by its node id.
- OVERSEER_ONLY_FILE: node ids, one per line: only these tests run (the others are
  deselected), for re-running failures to tell a flaky test from a broken one. A line that
  names a file (`tests/test_x.py`) selects every test in it (a new test file, proved alone).
- OVERSEER_RESULTS_FILE: at the end, each test's outcome as pytest's JUnit XML report
  (`--junitxml`, xunit1) would give it — class and test name, file, time, the first failure,
  error or skipped element — as JSON, written in a few milliseconds where the XML report costs
  ~0.1 ms a test (70–90 ms on a suite of 800). The XML report stays the reference:
  tests/core/plumbing/test_results.py holds the two side by side.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

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


def junit_names(nodeid: str) -> tuple[str, str]:
    """The class name and the name pytest's JUnit report gives the test with this node id."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]), _xml_text(names[-1])


def junit_id(nodeid: str) -> str:
    """The id overseer reads from the report for the test with this node id."""
    classname, name = junit_names(nodeid)
    return f"{classname}::{name}" if classname else name


# What XML cannot hold, written as pytest's report writes it (#xNN).
_NOT_XML = re.compile("[^\t\n\r\x20-\x7e\x80-\ud7ff\ue000-\ufffd]")


def _xml_text(text: object) -> str:
    def code(match: re.Match[str]) -> str:
        point = ord(match.group())
        return f"#x{point:02X}" if point <= 0xFF else f"#x{point:04X}"

    return _NOT_XML.sub(code, str(text))


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


# The results, by node id: [class name, name, file, seconds, first failure/error/skipped].
_RESULTS: dict[str, list[Any]] = {}
# Tests whose call failed: a teardown that fails too is a testcase of its own in the XML report.
_CALL_FAILED: set[str] = set()
_WORKER = False  # an xdist worker: its reports reach the controller, which writes them


def pytest_configure(config: pytest.Config) -> None:
    global _WORKER
    _WORKER = hasattr(config, "workerinput")


def _crash(report: Any) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    return crash.message if crash is not None else str(report.longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _WORKER or not os.environ.get("OVERSEER_RESULTS_FILE"):
        return
    nodeid, when = report.nodeid, report.when
    if when == "teardown" and nodeid in _CALL_FAILED:
        _CALL_FAILED.discard(nodeid)
        if report.failed:
            _RESULTS.pop(nodeid, None)  # the teardown's error is what the last testcase says
    record = _RESULTS.get(nodeid)
    if record is None:
        record = _RESULTS[nodeid] = [*junit_names(nodeid), report.location[0], 0.0, None]
    child = None
    if report.failed and when == "call":
        _CALL_FAILED.add(nodeid)
        if hasattr(report, "wasxfail"):  # a strict xfail that passed
            child = ["skipped", None, "xfail-marked test passes unexpectedly", "None"]
        else:
            child = ["failure", None, _xml_text(_crash(report)), _xml_text(report.longrepr)]
    elif report.failed:
        said = f'failed on {"teardown" if when == "teardown" else "setup"} with "{_crash(report)}"'
        child = ["error", None, _xml_text(said), _xml_text(report.longrepr)]
    elif report.skipped and hasattr(report, "wasxfail"):
        reason = report.wasxfail
        reason = reason[8:] if reason.startswith("reason: ") else reason
        child = ["skipped", "pytest.xfail", _xml_text(reason), None]
    elif report.skipped and isinstance(report.longrepr, tuple):
        filename, lineno, reason = report.longrepr
        reason = reason[9:] if reason.startswith("Skipped: ") else reason
        child = [
            "skipped",
            "pytest.skip",
            _xml_text(reason),
            _xml_text(f"{filename}:{lineno}: {reason}"),
        ]
    if child is not None and record[4] is None:
        record[4] = child
    record[3] += getattr(report, "duration", 0.0)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if _WORKER or not os.environ.get("OVERSEER_RESULTS_FILE") or report.passed:
        return
    where = report.location[0] if report.location else None
    record = _RESULTS.setdefault(report.nodeid, [*junit_names(report.nodeid), where, 0.0, None])
    if record[4] is None:
        said = "collection failure" if report.failed else "collection skipped"
        record[4] = [
            "error" if report.failed else "skipped",
            None,
            said,
            _xml_text(report.longrepr),
        ]


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("OVERSEER_RESULTS_FILE")
    if _WORKER or not path:
        return
    records = [[c, n, f, f"{t:.3f}", child] for c, n, f, t, child in _RESULTS.values()]
    with open(path, "w", encoding="utf-8") as out:
        json.dump(records, out)
