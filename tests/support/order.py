"""The order the suite runs in: the longest files first (tests/conftest.py has the why)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


# Where the slowest files are (they start daemons, terminals, and kill them): first in a run
# that has no times yet (a fresh clone: CI), the longest folder first as the timed runs found.
HEAVY_FOLDERS = ("tests/faults/", "tests/tui/", "tests/daemon/")


def longest_files_first(
    nodeids: Sequence[str], seconds: Mapping[str, float]
) -> Callable[[str], float]:
    """A sort key for `nodeids`: files by the seconds their tests took last time (summed; a test
    never timed counts nothing), the longest first, and a file none of whose tests was ever
    timed before them all. Python's sort is stable, so equal keys keep the collection's order:
    each file's tests stay together and in their order. When no test was ever timed, the heavy
    folders first, in their order."""
    per_file: dict[str, float] = {}
    for nodeid in nodeids:
        if nodeid in seconds:
            per_file[file_of(nodeid)] = per_file.get(file_of(nodeid), 0.0) + seconds[nodeid]
    if not per_file:
        return lambda nodeid: next(
            (-len(HEAVY_FOLDERS) + n for n, f in enumerate(HEAVY_FOLDERS) if nodeid.startswith(f)),
            0,
        )
    return lambda nodeid: -per_file.get(file_of(nodeid), float("inf"))
