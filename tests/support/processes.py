"""Finding the processes a test started, by a marker in their command line and where they run."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path


def processes_with(marker: str, under: Path) -> list[int]:
    """Live processes whose command line has `marker` and whose directory is under `under`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                cwd = Path(os.readlink(entry / "cwd"))
            except OSError:
                continue
            if marker in cmdline and cwd.is_relative_to(under):
                found.append(int(entry.name))
    return found


def children_with(marker: str) -> list[int]:
    """Live children of this process whose command line has `marker` (not zombies: a child
    waited for is gone)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                # pid (comm) state ppid …: the fields after the command's closing parenthesis
                state, ppid = (entry / "stat").read_text().rpartition(")")[2].split()[:2]
            except (OSError, ValueError):
                continue
            if marker in cmdline and int(ppid) == os.getpid() and state != "Z":
                found.append(int(entry.name))
    return found


def wait_started(marker: str, under: Path, seconds: float = 60.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = processes_with(marker, under)
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no process with {marker!r} started under {under}")


def wait_gone(marker: str, under: Path, seconds: float = 5.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = processes_with(marker, under)
        if not left:
            return []
        time.sleep(0.05)
    return processes_with(marker, under)


def wait_for_phase(state_dir, phase: str, seconds: float = 60) -> str:
    """The id of an attempt the history says is running in `phase`, once one is."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn = sqlite3.connect(state_dir / "history.sqlite3")
            found = conn.execute(
                "select improvement_id from improvements where phase = ? and status = 'running'",
                [phase],
            ).fetchall()
            conn.close()
        except sqlite3.Error:
            found = []
        if found:
            return found[0][0]
        time.sleep(0.1)
    raise AssertionError(f"no attempt reached {phase}")
