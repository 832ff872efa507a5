"""Another user on the same host: clients run as uid 65534 (nobody) in a child process, with
only the standard library (that user may not be able to read overseer's files), and overseer's
own command line run as that user, for what depends on permissions (CI runs as root, who may
open every socket and write every file). Needs root."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import overseer
from support.helpers import GIT_ENV

NOBODY = 65534
NOGROUP = 65534  # nobody's own group ("nogroup" on Debian, "nobody" elsewhere)

# Each request in turn on one connection; prints the answers (events skipped).
CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb")
answers = []
for n, (op, args) in enumerate(json.loads(sys.argv[2])):
    f.write(json.dumps({"id": n, "op": op, "args": args}).encode() + b"\n")
    f.flush()
    while True:
        message = json.loads(f.readline())
        if "event" not in message:
            break
    answers.append(message)
print(json.dumps(answers))
"""

# Opens COUNT connections, one after the other, each saying hello and reading the first line
# the daemon sends (its answer, or its refusal); prints those lines, then holds every
# connection open until its stdin closes.
FLOOD = r"""
import json, socket, sys
path, count = sys.argv[1], int(sys.argv[2])
held, first = [], []
for _ in range(count):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    try:
        s.sendall(b'{"id": 0, "op": "hello", "args": {"protocol": 1}}\n')
    except OSError:
        pass  # refused and closed already: the reason is waiting to be read
    data = b""
    try:
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    first.append(json.loads(data) if data else None)
    held.append(s)
print(json.dumps(first), flush=True)
sys.stdin.read()
"""


def python_for(uid: int) -> str | None:
    """An interpreter that `uid` may run, or None."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", sys.executable):
        try:
            ok = subprocess.run(
                [candidate, "-c", "pass"],
                user=uid,
                group=uid,
                extra_groups=[],
                capture_output=True,
                timeout=10,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if ok.returncode == 0:
            return candidate
    return None


def nobody_python() -> str:
    python = python_for(NOBODY)
    if python is None:
        pytest.skip("no Python interpreter that uid 65534 may run")
    return python


async def as_nobody(socket_path: Any, requests: list[Any]) -> list[dict[str, Any]]:
    """The requests, from a child process running as nobody (off the event loop's thread,
    which a daemon in this process needs to answer)."""
    out = await asyncio.to_thread(
        subprocess.run,
        [nobody_python(), "-c", CLIENT, str(socket_path), json.dumps(requests)],
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


class Flood:
    """`count` connections held open by nobody: `first` is what the daemon first said on each
    (a hello answer, or a refusal); `release()` closes them all."""

    def __init__(self, proc: asyncio.subprocess.Process, first: list[dict[str, Any] | None]):
        self.proc = proc
        self.first = first

    @classmethod
    async def open(cls, socket_path: Any, count: int) -> Flood:
        proc = await asyncio.create_subprocess_exec(
            nobody_python(),
            "-c",
            FLOOD,
            str(socket_path),
            str(count),
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line, "the flooding client died"
        return cls(proc, json.loads(line))

    async def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        await asyncio.wait_for(self.proc.wait(), 30)


# Requests as they come on stdin (one JSON [op, args] a line), each answer on stdout: one
# connection a test keeps open while the configuration changes under it.
SESSION = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb")
for n, line in enumerate(sys.stdin):
    op, args = json.loads(line)
    f.write(json.dumps({"id": n, "op": op, "args": args}).encode() + b"\n")
    f.flush()
    print(f.readline().decode().strip(), flush=True)
"""


class Session:
    """One connection, as nobody, that stays open: `await session.ask(op, **args)`."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def open(cls, socket_path: Any) -> Session:
        proc = await asyncio.create_subprocess_exec(
            nobody_python(),
            "-c",
            SESSION,
            str(socket_path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
        )
        return cls(proc)

    async def ask(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps([op, args]).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        assert line, "the session ended"
        return json.loads(line)  # type: ignore[no-any-return]

    async def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        await self.proc.wait()


# -- overseer's command line as nobody ------------------------------------------------------


@functools.cache
def python_for_others() -> tuple[str, str] | str:
    """(an interpreter uid 65534 may run, the PYTHONPATH that gives it overseer and its
    packages), or why there is none. The test's own interpreter may live where others may
    not look (a home directory); a system one of the same version reads the same packages."""
    if os.geteuid() != 0:
        return "running a command as another user needs root (CI runs as root)"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"]
    candidates += [found] if (found := shutil.which(version)) else []
    path = os.pathsep.join([str(Path(overseer.__file__).parents[1]), *site.getsitepackages()])
    for candidate in dict.fromkeys(candidates):
        try:
            ok = subprocess.run(
                [candidate, "-c", "import overseer.cli, sqlite_utils"],
                env={"PYTHONPATH": path, "PATH": os.defpath},
                cwd="/",
                user=NOBODY,
                group=NOGROUP,
                extra_groups=[],
                capture_output=True,
                timeout=30,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if ok.returncode == 0:
            return candidate, path
    return f"no {version} that uid {NOBODY} may run reads overseer and its packages"


def require_another_user() -> tuple[str, str]:
    found = python_for_others()
    if isinstance(found, str):
        pytest.skip(found)
    return found


def overseer_as_nobody(
    *args: str, groups: tuple[int, ...] = (), env: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """`overseer ARGS` as uid 65534 (group 65534 and `groups`), in a clean environment: no
    socket unless `env` names one (None in `env` removes a variable), and a home directory
    nobody has."""
    python, path = require_another_user()
    full_env = {
        **GIT_ENV,
        "PATH": os.environ.get("PATH", os.defpath),
        "PYTHONPATH": path,
        "HOME": "/nonexistent",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "OVERSEER_SOCKET": "/nonexistent/overseer.sock",
        **(env or {}),
    }
    full_env = {k: v for k, v in full_env.items() if v is not None}
    return subprocess.run(
        [python, "-m", "overseer", *args],
        env=full_env,
        cwd="/",
        user=NOBODY,
        group=NOGROUP,
        extra_groups=list(groups),
        capture_output=True,
        text=True,
        timeout=120,
    )
