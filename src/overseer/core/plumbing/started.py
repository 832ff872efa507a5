"""What overseer started, so that after a crash it kills exactly that and nothing else.

A run that is SIGKILLed cannot take its test command's process group down with it; the
orphans keep running. Each command overseer starts in a process group of its own is recorded
here when it starts (its group id and the kernel's start time of its leader) and forgotten when
it ends. Start-up recovery kills the groups whose record is left and whose leader is still the
very process that was recorded — never a process found by where it runs: a reviewer's shell
in a waiting change's worktree is nobody's business but the reviewer's.

The runtime installs the directory of its state (`install`); without one (a test of the
sandbox alone) nothing is recorded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
from pathlib import Path

log = logging.getLogger(__name__)

_directory: Path | None = None


def install(directory: Path) -> None:
    """Record what is started from now on in `directory` (the state directory's)."""
    global _directory
    _directory = directory


def _stat(pid: int | str) -> tuple[int, int, int] | None:
    """(process group, session, start time in clock ticks since boot) from /proc/<pid>/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    fields = stat[stat.rindex(")") + 2 :].split()
    try:
        return int(fields[2]), int(fields[3]), int(fields[19])
    except (IndexError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    """When the process started: a pid is reused, a pid with its start time is not."""
    stat = _stat(pid)
    return stat[2] if stat else None


def _group_is_ours(pgid: int, started: int | None) -> bool:
    """The group we started is still there: its leader is the very process recorded, or (the
    leader has exited, its children linger) members of a session led by that pid that began
    no earlier than the leader did."""
    if started is None:
        return False
    if start_time(pgid) == started:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return False
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(entry.name)
        if stat and stat[0] == pgid and stat[1] == pgid and stat[2] >= started:
            return True
    return False


def _alive(pid: int, started: int | None) -> bool:
    return started is not None and start_time(pid) == started


def remember(pgid: int, command: str, cwd: Path) -> Path | None:
    """Record a process group just started; returns the record to `forget` when it ends."""
    if _directory is None:
        return None
    record = {
        "pgid": pgid,
        "start": start_time(pgid),
        "command": command[:500],
        "cwd": str(cwd),
        "owner": os.getpid(),
        "owner_start": start_time(os.getpid()),
    }
    path = _directory / f"{pgid}.json"
    try:
        _directory.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    except OSError as exc:  # a full disk must not stop the command: it is only less tidy
        log.warning("could not record process group %d: %s", pgid, exc)
        return None
    return path


def forget(record: Path | None) -> None:
    if record is not None:
        with contextlib.suppress(OSError):
            record.unlink()


def kill_orphans(directory: Path, under: Path) -> list[str]:
    """Kill the recorded groups started for work under `under` (a target's worktrees) whose
    owner is gone and whose leader is still the process recorded; forget the records of
    groups that ended. Returns what was killed. Records of a live owner (another overseer
    process on this state directory, working on another target) are left alone."""
    killed: list[str] = []
    if not directory.is_dir():
        return killed
    under = under.resolve()
    for path in sorted(directory.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            pgid, cwd = int(record["pgid"]), Path(record["cwd"])
        except (OSError, ValueError, KeyError, TypeError):
            forget(path)  # unreadable: nothing can be matched to it, ever
            continue
        if not cwd.is_relative_to(under):
            continue  # another target's: its own recovery decides
        if record.get("owner") != os.getpid() and _alive(
            int(record.get("owner", 0)), record.get("owner_start")
        ):
            continue  # its process is still at work
        if _group_is_ours(pgid, record.get("start")):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
                killed.append(f"{pgid} ({record.get('command', '?')[:80]})")
        forget(path)
    return killed
