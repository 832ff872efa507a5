"""The daemon out of file descriptors: with its open-file limit at 64 and connections allowed
beyond it, clients use up every descriptor. The accept loop waits and says so in a line or two
(asyncio's own logged thousands of lines a second), the connection that could not be taken
waits in the socket's queue and is answered once others close, and a cycle afterwards runs as
it would have — no git command reported as "not a git repository"."""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import time

import pytest

from support.daemons import DaemonProcess
from support.helpers import daemon_config, rows
from support.load import HELLO

LIMIT = 64
EXHAUSTED_FOR = 3.0  # seconds out of descriptors: asyncio's accept path retried each second


def low_open_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


def hello(path, seconds: float) -> tuple[socket.socket, dict | None]:
    """A connection that said hello, and the answer if one came within `seconds`."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))  # the kernel's queue takes it even when the daemon cannot
    sock.sendall(HELLO)
    sock.settimeout(seconds)
    data = b""
    with contextlib.suppress(TimeoutError):
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return sock, json.loads(data) if data.endswith(b"\n") else None


@pytest.mark.usefixtures("warm_baseline")
def test_out_of_descriptors_the_daemon_waits_says_so_once_and_recovers(tmp_path, repo, sockdir):
    path = sockdir / "s.sock"
    config, _ = daemon_config(tmp_path, repo, path, daemon={"max_connections": 4 * LIMIT})
    daemon = DaemonProcess(config, path, preexec=low_open_file_limit)
    held: list[socket.socket] = []
    try:
        daemon.wait_ready()
        waiting = None
        for _ in range(LIMIT):
            sock, answer = hello(path, seconds=2)
            if answer is None:
                waiting = sock  # not accepted: no descriptor left
                break
            assert answer["ok"], answer
            held.append(sock)
        assert waiting is not None, "every connection was answered: the limit did not apply"
        time.sleep(EXHAUSTED_FOR)  # out of descriptors all along: how much does it log?
        for sock in held:
            sock.close()
        waiting.settimeout(10)
        answer = json.loads(waiting.makefile("rb").readline())
        assert answer["ok"] and answer["result"]["protocol"] == 1  # taken from the queue
        waiting.close()
        assert daemon.request("ping") == {"pong": True}
        log = daemon.output()
        exhausted = [line for line in log.splitlines() if "cannot accept a connection" in line]
        assert 1 <= len(exhausted) <= 2, exhausted
        assert "Too many open files" in exhausted[0] and f"limit is {LIMIT}" in exhausted[0]
        assert "accepting connections again" in log
        # The cycle has its descriptors again.
        daemon.run_now()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not [
            r for r in rows(tmp_path / "state") if r["status"] == "awaiting_approval"
        ]:
            time.sleep(0.2)
        [row] = rows(tmp_path / "state")
        assert row["status"] == "awaiting_approval", row
    finally:
        for sock in held:
            sock.close()
        code = daemon.stop()
    assert code == 0, daemon.output()[-3000:]
    assert "not a git repository" not in daemon.output()
