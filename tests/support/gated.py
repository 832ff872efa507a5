"""A target whose tests wait until a file exists: the test that made it decides when that
target's test runs end (the baseline's and every candidate's), to catch the daemon while those
tests are running. A copy of the sample with one more test, so its findings are the sample's."""

from __future__ import annotations

from pathlib import Path

from support.helpers import commit_file
from support.template import SampleTemplate

WAITS_FOR_GATE = """import os
import time

GATE = {gate!r}


def test_waits_for_the_gate():
    deadline = time.monotonic() + 300
    while not os.path.exists(GATE):
        assert time.monotonic() < deadline, "the gate never opened"
        time.sleep(0.05)
"""


def gated_repo(sample: SampleTemplate, path: Path, gate: Path) -> Path:
    """The sample at `path`, whose tests wait for `gate` to exist (its baseline is not the
    sample's: it is measured, and waits too)."""
    sample.copy(path)
    commit_file(path, "tests/test_gate.py", WAITS_FOR_GATE.format(gate=str(gate)), "a gate")
    return path
