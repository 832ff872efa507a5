"""One request with a plain blocking socket, as the CLI's quick commands make it: the same
answers and errors as the asyncio client, against a real daemon on a real socket."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest

from overseer.client import Client
from overseer.daemon.server import run_daemon
from overseer.oneshot import DaemonError, DaemonUnavailable, request
from overseer.protocol import MAX_LINE_BYTES


async def test_a_request_is_answered_as_the_asyncio_client_is_answered(daemon_options):
    async with run_daemon(daemon_options()) as daemon:
        path = daemon.socket_path
        quick = await asyncio.to_thread(request, path, "status")
        async with Client(path) as client:
            full = await client.request("status")
        assert quick["pid"] == full["pid"] and quick["targets"] == full["targets"]
        assert quick["state"] == "idle" and quick["schedule"] == "every 1h"
        # An error answer is raised with the protocol's fields.
        with pytest.raises(DaemonError) as failed:
            await asyncio.to_thread(request, path, "show", id="0000000000")
        assert failed.value.type == "not_found" and "0000000000" in failed.value.message
        # A request the daemon would discard unread is refused before anything is sent.
        with pytest.raises(DaemonError) as refused:
            await asyncio.to_thread(request, path, "pause", reason="r" * MAX_LINE_BYTES)
        assert refused.value.type == "line_too_long"
        assert f"{MAX_LINE_BYTES:,}" in refused.value.message
        assert daemon.rt.history.get_control("paused") is None
        assert (await asyncio.to_thread(request, path, "ping"))["pong"]


def test_without_a_daemon_it_says_where_it_looked(sockdir):
    missing = sockdir / "none.sock"
    with pytest.raises(DaemonUnavailable, match=f"there is no socket at {missing}"):
        request(missing, "status")
    stale = sockdir / "stale.sock"
    left = socket.socket(socket.AF_UNIX)
    left.bind(str(stale))  # a socket file nobody listens on, as a killed daemon leaves
    left.close()
    with pytest.raises(DaemonUnavailable, match="exists but nothing listens"):
        request(stale, "status")


async def test_overseer_status_imports_neither_asyncio_nor_logging(daemon_options):
    """The point of the one-shot client (bench/import_time.py has the figures)."""
    probe = (
        "import sys\n"
        "from overseer.cli import main\n"
        "try:\n"
        "    main(['status', '--socket', sys.argv[1]])\n"
        "finally:\n"
        "    print('imported:', *(m for m in ('asyncio', 'logging') if m in sys.modules))\n"
    )
    async with run_daemon(daemon_options()) as daemon:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", probe, str(daemon.socket_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert "· IDLE ·" in done.stdout, (done.stdout, done.stderr)
    assert done.stdout.splitlines()[-1] == "imported:", done.stdout
