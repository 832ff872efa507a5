"""A pytest plugin overseer loads into the target's test run to report progress live.

It only appends lines to the file named by $OVERSEER_PROGRESS_FILE: `total N` once the tests
are collected, then one `done` line per finished test. It changes nothing else.
"""

import os

_path = os.environ.get("OVERSEER_PROGRESS_FILE")


def _write(line):
    if _path:
        with open(_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def pytest_collection_finish(session):
    _write(f"total {len(session.items)}")


def pytest_runtest_logfinish(nodeid, location):
    _write("done")
