"""Clients that abuse the socket: more connections than the daemon serves, connections that
never say hello, and a client that sends requests and never reads the answers. Whatever they
do, an approver gets in and is answered, and what the daemon holds for each is bounded.

The daemon runs in this process (its connections and log can be looked at); the clients are
real sockets, some of them in a child process run as another user (as root, as CI runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import threading

import pytest

from overseer.client import Client, DaemonError
from overseer.daemon.server import run_daemon
from support.helpers import overseer
from support.load import HELLO, fill_history
from support.users import NOBODY, Flood

ANSWER_WITHIN = 5.0  # seconds: an approver not answered by then is locked out


def raw_connection(path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(ANSWER_WITHIN)
    sock.connect(str(path))
    return sock


def first_line(sock: socket.socket) -> dict | None:
    """The first line the daemon sends on this connection (None if it closed without one)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return json.loads(data) if data else None


def greeted(path) -> tuple[socket.socket, dict | None]:
    sock = raw_connection(path)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(HELLO)
    return sock, first_line(sock)


async def test_over_the_cap_a_client_is_refused_with_a_clear_line(daemon_options, tmp_path):
    # Nobody here is an approver: the reserved places stay empty.
    opts = daemon_options(
        daemon={"max_connections": 4, "reserved_for_approvers": 2},
        approvers={"users": [], "groups": [], "include_owner": False},
    )
    async with run_daemon(opts) as daemon:
        path = daemon.socket_path
        held = []
        for _ in range(4):
            sock, hello = await asyncio.to_thread(greeted, path)
            assert hello is not None and hello["ok"], hello
            held.append(sock)
        sock, refusal = await asyncio.to_thread(greeted, path)
        sock.close()
        assert refusal is not None and refusal["id"] is None and not refusal["ok"], refusal
        assert refusal["error"]["type"] == "too_many_connections"
        assert "serves at most 4 (daemon.max_connections)" in refusal["error"]["message"]
        # The client library and the command line say it too, rather than "no answer".
        with pytest.raises(DaemonError, match="serves at most 4") as refused:
            await asyncio.wait_for(Client(path).connect(), ANSWER_WITHIN)
        assert refused.value.type == "too_many_connections"
        cli = await asyncio.to_thread(overseer, "status", env={"OVERSEER_SOCKET": str(path)})
        assert cli.returncode != 0 and "Too many connections" in cli.stderr, cli.stderr
        # A place freed is a place taken.
        held.pop().close()
        for _ in range(200):
            if daemon.connections_server.admitted < 4:
                break
            await asyncio.sleep(0.02)
        async with Client(path) as client:
            assert (await client.request("ping", timeout=ANSWER_WITHIN))["pong"]
        for sock in held:
            sock.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="a client as another uid needs root (as in CI)")
async def test_a_flood_of_connections_leaves_room_for_an_approver_to_pause(daemon_options):
    # nobody may connect (the socket's group) and is no approver; this process's user is
    # (the daemon's owner).
    opts = daemon_options(
        daemon={"socket_group": NOBODY, "max_connections": 6, "reserved_for_approvers": 2},
        approvers={"users": [], "groups": []},
    )
    async with run_daemon(opts) as daemon:
        flood = await Flood.open(daemon.socket_path, 10)
        try:
            answered = [line for line in flood.first if line and line.get("ok")]
            refused = [line for line in flood.first if line and not line.get("ok")]
            assert len(answered) == 6 and len(refused) == 4, flood.first
            for line in refused:
                assert line["error"]["type"] == "too_many_connections", line
                assert "2 more for approvers" in line["error"]["message"], line
            # The kill switch: both reserved places are an approver's, and pause is answered.
            async with (
                Client(daemon.socket_path) as first,
                Client(daemon.socket_path) as second,
            ):
                paused = await first.request("pause", reason="flood", timeout=ANSWER_WITHIN)
                assert paused == {"paused": True}
                assert (await second.request("status", timeout=ANSWER_WITHIN))["paused"]
                # Full now, approvers' places too.
                with pytest.raises(DaemonError, match="2 more for approvers"):
                    await asyncio.wait_for(Client(daemon.socket_path).connect(), ANSWER_WITHIN)
            assert daemon.rt.history.get_control("paused")["uid"] == os.getuid()
        finally:
            await flood.release()


async def test_a_connection_that_never_says_hello_is_closed(daemon_options):
    async with run_daemon(daemon_options(daemon={"hello_timeout": 0.5})) as daemon:
        path = daemon.socket_path
        polite, hello = await asyncio.to_thread(greeted, path)
        assert hello is not None and hello["ok"]
        silent = raw_connection(path)
        told = await asyncio.to_thread(first_line, silent)
        assert told is not None and told["error"]["type"] == "handshake_timeout", told
        assert "daemon.hello_timeout" in told["error"]["message"]
        assert await asyncio.to_thread(silent.recv, 1) == b""  # and closed
        silent.close()
        # One that said hello stays, however quiet.
        polite.sendall(b'{"id": 1, "op": "ping"}\n')
        assert (await asyncio.to_thread(first_line, polite))["result"] == {"pong": True}
        polite.close()


async def test_a_client_that_never_reads_is_cut_off_at_its_budget(daemon_options, caplog):
    budget_kb = 16
    opts = daemon_options(daemon={"max_client_buffer_kb": budget_kb})
    caplog.set_level(logging.WARNING, logger="overseer.daemon.connections")
    async with run_daemon(opts) as daemon:
        flooder = raw_connection(daemon.socket_path)
        flooder.settimeout(30)  # a daemon that stops reading without cutting it off fails here
        request = b'{"id": 1, "op": "status"}\n'
        stopped: list[BaseException] = []

        def flood() -> None:
            try:
                flooder.sendall(HELLO)
                while True:
                    flooder.sendall(request * 64)
            except OSError as exc:  # the daemon hung up on it
                stopped.append(exc)

        sender = threading.Thread(target=flood)
        sender.start()
        await asyncio.to_thread(sender.join, 60)
        assert stopped and not isinstance(stopped[0], TimeoutError), stopped
        [line] = [r.getMessage() for r in caplog.records if "does not read" in r.getMessage()]
        held_kb = int(re.search(r"(\d+) KiB of them were waiting", line).group(1))
        assert budget_kb <= held_kb <= budget_kb + 1, line  # the budget and one answer, no more
        # Everyone else is served as before.
        async with Client(daemon.socket_path) as client:
            assert (await client.request("ping", timeout=ANSWER_WITHIN))["pong"]
        flooder.close()
        for _ in range(100):
            if len(daemon.connections) == 0:
                break
            await asyncio.sleep(0.02)
        assert daemon.connections == set()


def never_reading(path, request: bytes, held: list[socket.socket]) -> None:
    """Hello, then `request` over and over until the daemon stops taking them or hangs up
    (or the test closes the socket)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    held.append(sock)
    sock.settimeout(1.0)
    with contextlib.suppress(OSError):
        sock.sendall(HELLO)
        while True:
            sock.sendall(request * 16)


async def test_heavy_requests_from_many_clients_do_not_hold_up_a_pause(
    daemon_options, tmp_path, caplog
):
    # Each `history` of 1,000 attempts keeps a reading thread busy for a while: a pause queued
    # behind 20 clients' worth of them used to wait 20 s.
    fill_history(tmp_path / "state", 1000)
    caplog.set_level(logging.INFO, logger="overseer.daemon.connections")
    async with run_daemon(daemon_options()) as daemon:
        request = b'{"id": 1, "op": "history", "args": {"limit": 1000}}\n'
        held: list[socket.socket] = []
        threads = [
            threading.Thread(target=never_reading, args=(daemon.socket_path, request, held))
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        # Once the daemon has taken plenty of their requests (more than it works on at once):
        for _ in range(600):
            taken = sum(c.backlog for c in daemon.connections)
            if taken >= 8 * 16:
                break
            await asyncio.sleep(0.01)
        assert taken >= 8 * 16, taken
        async with Client(daemon.socket_path) as approver:
            answer = await approver.request("pause", reason="flood", timeout=ANSWER_WITHIN)
            assert answer == {"paused": True}
        for sock in held:
            sock.close()
        for thread in threads:
            await asyncio.to_thread(thread.join, 10)
        # They are let go, what they asked for and will not read is dropped, and the memory
        # it took is given back to the system (the daemon says so).
        for _ in range(300):
            if any("memory given back" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.05)
        assert any("memory given back" in r.getMessage() for r in caplog.records)
        assert daemon.connections == set()


async def test_a_pause_is_answered_while_every_reading_thread_is_busy(daemon_options):
    # Reads (status, history, show) share a pool of threads that clients can keep busy;
    # decisions have their own, so the kill switch never queues behind them.
    async with run_daemon(daemon_options()) as daemon:
        loop = asyncio.get_running_loop()
        release = threading.Event()
        busy = [loop.run_in_executor(None, release.wait, 30) for _ in range(64)]
        try:
            async with Client(daemon.socket_path) as approver:
                answer = await approver.request("pause", reason="busy", timeout=ANSWER_WITHIN)
                assert answer == {"paused": True}
                assert daemon.rt.history.get_control("paused")["reason"] == "busy"
        finally:
            release.set()
            await asyncio.gather(*busy)
