"""Authorization from the peer's credentials: a child process run as another uid may read but
not decide, unless the configuration lists it as an approver."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

import pytest

from overseer.daemon.server import DaemonOptions, run_daemon
from support.users import CLIENT, NOBODY, as_nobody, nobody_python

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="running a child as another uid needs root (CI runs as root)"
)

REQUESTS = [
    ["hello", {"protocol": 1}],
    ["status", {}],
    ["approve", {"id": "abcdef12"}],
    ["pause", {"reason": "let me"}],
]


def nobody_may_connect(daemon_options, approvers) -> DaemonOptions:
    """A daemon whose socket nobody's group may open, with these approvers."""
    return daemon_options(daemon={"socket_group": NOBODY}, approvers=approvers)


async def test_another_uid_may_read_but_not_decide(daemon_options):
    async with run_daemon(nobody_may_connect(daemon_options, {})) as daemon:
        assert os.stat(daemon.socket_path).st_gid == NOBODY
        hello, status, approve, pause = await as_nobody(daemon.socket_path, REQUESTS)
        assert (
            hello["ok"]
            and hello["result"]["user"] == "nobody"
            and hello["result"]["approver"] is False
        )
        assert status["ok"] and status["result"]["state"] == "idle"
        for refused in (approve, pause):
            assert refused["error"]["type"] == "not_authorized"
            assert "nobody (uid 65534) is not an approver" in refused["error"]["message"]
        assert daemon.rt.history.get_control("paused") is None


async def test_a_listed_approver_may_decide_and_is_recorded(daemon_options):
    opts = nobody_may_connect(daemon_options, {"users": ["nobody"]})
    async with run_daemon(opts) as daemon:
        hello, _, approve, pause = await as_nobody(daemon.socket_path, REQUESTS)
        assert hello["result"]["approver"] is True
        assert approve["error"]["type"] == "not_found"  # allowed; there is just no such attempt
        assert pause["ok"]
        assert daemon.rt.history.get_control("paused")["user"] == "nobody"
        assert daemon.rt.history.get_control("paused")["uid"] == NOBODY


async def test_a_member_of_an_approvers_group_may_decide(daemon_options):
    import grp

    group = grp.getgrgid(NOBODY).gr_name  # nobody's own group ("nogroup" on Debian)
    async with run_daemon(nobody_may_connect(daemon_options, {"groups": [group]})) as daemon:
        hello, _, approve, pause = await as_nobody(daemon.socket_path, REQUESTS)
        assert hello["result"]["approver"] is True
        assert approve["error"]["type"] == "not_found"  # allowed; there is just no such attempt
        assert pause["ok"] and daemon.rt.history.get_control("paused")["uid"] == NOBODY
    # The same without the group: refused, and the refusal names who may.
    async with run_daemon(nobody_may_connect(daemon_options, {"groups": ["root"]})) as daemon:
        hello, _, approve, pause = await as_nobody(daemon.socket_path, REQUESTS)
        assert hello["result"]["approver"] is False
        assert pause["error"]["type"] == "not_authorized", pause
        assert "is not an approver" in pause["error"]["message"]


async def test_without_the_socket_group_another_uid_cannot_even_connect(daemon_options):
    async with run_daemon(daemon_options()) as daemon:
        out = await asyncio.to_thread(
            subprocess.run,
            [nobody_python(), "-c", CLIENT, str(daemon.socket_path), json.dumps(REQUESTS[:1])],
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode != 0 and "PermissionError" in out.stderr


async def test_retry_is_a_decision_like_approve(daemon_options):
    """Opening a settled finding again is for approvers only; a listed one may."""
    requests = [["hello", {"protocol": 1}], ["retry", {"id": "abcdef12", "reason": "why not"}]]
    async with run_daemon(nobody_may_connect(daemon_options, {})) as daemon:
        _, refused = await as_nobody(daemon.socket_path, requests)
    assert refused["error"]["type"] == "not_authorized"
    opts = nobody_may_connect(daemon_options, {"users": ["nobody"]})
    async with run_daemon(opts) as daemon:
        _, allowed = await as_nobody(daemon.socket_path, requests)
    assert allowed["error"]["type"] == "not_found"  # allowed; there is just no such attempt
