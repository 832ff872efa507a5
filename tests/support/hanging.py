"""A target whose tests pass at the base and hang once a candidate removes `json` from
pkg.util: for the tests of timeouts, interruptions and recovery. The hanging test and its
child process sleep 316.5 s: a marker only these tests start (see support.processes)."""

from __future__ import annotations

from pathlib import Path

from support.helpers import init_repo

UTIL = "import json\n\n\ndef double(x):\n    return x * 2\n"
# Passes quickly at the base; hangs (with a child process) once `json` is gone from pkg.util.
HANGS_ON_CANDIDATE = """import subprocess
import time

from pkg import util


def test_double():
    if not hasattr(util, "json"):
        subprocess.Popen(["sleep", "316.5"])
        time.sleep(316.5)
    assert util.double(2) == 4
"""


def hanging_repo(tmp_path: Path) -> Path:
    return init_repo(
        tmp_path / "proj",
        {"pkg/__init__.py": "", "pkg/util.py": UTIL, "tests/test_util.py": HANGS_ON_CANDIDATE},
    )
