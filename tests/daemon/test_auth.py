"""Authorization from the peer's credentials: a child process run as another uid may read but
not decide, unless the configuration lists it as an approver."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

import pytest
import yaml

from overseer.client import Client
from overseer.daemon.server import DaemonOptions, run_daemon
from support.helpers import next_event, rows
from support.users import CLIENT, NOBODY, Session, as_nobody, nobody_python

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


@pytest.mark.usefixtures("warm_baseline")
async def test_an_approver_removed_by_a_reload_loses_the_right_on_an_open_connection(
    tmp_path, daemon_options
):
    opts = nobody_may_connect(daemon_options, {"users": ["nobody"]})
    async with run_daemon(opts) as daemon, Client(daemon.socket_path) as root:
        await root.request("subscribe")
        await root.request("run_now")
        waiting = (await next_event(root, "ApprovalRequested"))["improvement_id"]
        await next_event(root, "CycleFinished")
        session = await Session.open(daemon.socket_path)
        try:
            hello = await session.ask("hello", protocol=1)
            assert hello["result"]["approver"] is True
            # The right is real on this connection: it may pause and resume.
            assert (await session.ask("pause", reason="mine"))["ok"]
            assert (await session.ask("resume"))["ok"]

            data = yaml.safe_load(opts.config_path.read_text())
            data["approvers"] = {"users": []}
            opts.config_path.write_text(yaml.safe_dump(data))
            reloaded = await next_event(root, "ConfigReloaded", timeout=20)
            assert "approvers changed" in reloaded["changes"]

            # The same connection, still open: refused, saying why.
            for op, args in (
                ("pause", {"reason": "still mine?"}),
                ("approve", {"id": waiting, "reason": "ship it"}),
                ("reject", {"id": waiting, "reason": "no"}),
            ):
                answer = await session.ask(op, **args)
                assert answer["error"]["type"] == "not_authorized", (op, answer)
                assert "nobody (uid 65534) is not an approver" in answer["error"]["message"]
            assert (await session.ask("status"))["ok"]  # reading stays open to it
        finally:
            await session.close()
        assert daemon.rt.history.get_control("paused") is None
        assert daemon.rt.history.get(waiting)["status"] == "awaiting_approval"
    assert rows(tmp_path / "state", "approvals") == []
