"""The daemon in this process (`async with run_daemon(...)`), over its real Unix socket."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import time

import pytest

from overseer.base.clock import FakeClock
from overseer.client import Client, DaemonError, DaemonUnavailable
from overseer.daemon.server import DaemonFailed, run_daemon
from support.helpers import LIMITED, git, next_event, overseer, rows


@pytest.mark.usefixtures("warm_baseline")
async def test_a_scheduled_cycle_runs_and_waits_for_approval(daemon_options):
    async with run_daemon(daemon_options(every=1)) as daemon:
        async with Client(daemon.socket_path) as client:
            await client.request("subscribe")
            started = await next_event(client, "CycleStarted")
            assert started["target"] == "proj" and started["dry_run"] is False
            phases = []
            async for event in client.events():
                if event["kind"] == "PhaseFinished":
                    phases.append(event["phase"])
                if event["kind"] == "CycleFinished":
                    break
            assert phases == [
                "ANALYZE",
                "GENERATE",
                "SAFETY",
                "DEPLOY",
                "EVALUATE",
                "LEARN",
                "RECORD",
            ]
            status = await client.request("status")
            [pending] = status["pending_approvals"]
            assert pending["status"] == "awaiting_approval" and pending["expires_at"]


async def test_status_says_what_the_daemon_is_doing(sockdir, daemon_options):
    async with run_daemon(daemon_options()) as daemon:
        async with Client(daemon.socket_path) as client:
            assert client.hello["approver"] is True  # root, or the daemon's own user
            s = await client.request("status")
    assert s["state"] == "idle"
    assert s["autonomy"] == "supervised" and s["dry_run"] is False and s["max_changes"] == 1
    assert s["schedule"] == "every 1h" and s["next_run"]
    assert s["targets"][0]["budget"] == {
        "hour": {"used": 0, "limit": 3},
        "day": {"used": 0, "limit": 10},
        "cooldown_until": None,
    }
    assert s["pending_approvals"] == [] and s["paused"] is None
    assert s["socket"] == str(sockdir / "run" / "s.sock")


async def test_socket_permissions(daemon_options):
    async with run_daemon(daemon_options()) as daemon:
        mode = stat.S_IMODE(os.stat(daemon.socket_path).st_mode)
        assert stat.S_ISSOCK(os.stat(daemon.socket_path).st_mode) and mode == 0o660
        assert stat.S_IMODE(os.stat(daemon.socket_path.parent).st_mode) == 0o750
    assert not daemon.socket_path.exists()  # removed on shutdown


@pytest.mark.usefixtures("warm_baseline")
async def test_run_now_then_approve_promotes(tmp_path, repo, daemon_options):
    async with run_daemon(daemon_options()) as daemon:
        async with Client(daemon.socket_path) as client:
            await client.request("subscribe")
            assert (await client.request("run_now"))["started"] is True
            with pytest.raises(DaemonError) as busy:
                await client.request("run_now")
            assert busy.value.type == "busy"
            requested = await next_event(client, "ApprovalRequested")
            await next_event(client, "CycleFinished")
            after = await client.request("approve", id=requested["improvement_id"][:8], reason="ok")
            assert after["status"] == "promoted"
            assert git(repo, "rev-parse", "main") == after["git_commit_hash"]
            [approval] = rows(tmp_path / "state", "approvals")
            assert approval["decision"] == "approved" and approval["reason"] == "ok"
            assert approval["uid"] == os.getuid()


@pytest.mark.usefixtures("warm_baseline")
async def test_a_paused_daemon_promotes_nothing_until_resumed(repo, daemon_options):
    async with run_daemon(daemon_options()) as daemon:
        async with Client(daemon.socket_path) as client:
            await client.request("subscribe")
            await client.request("run_now")
            requested = await next_event(client, "ApprovalRequested")
            await next_event(client, "CycleFinished")
            before = git(repo, "rev-parse", "main")
            await client.request("pause", reason="incident")
            after = await client.request("approve", id=requested["improvement_id"], reason="ok")
            # The decision is kept; the promotion waits for the kill switch to be lifted.
            assert after["status"] == "ready_to_promote"
            assert git(repo, "rev-parse", "main") == before
            with pytest.raises(DaemonError):
                await client.request("run_now")  # paused: no cycle either
            await client.request("resume")
            await client.request("run_now")
            await next_event(client, "CycleFinished")
            row = daemon.rt.history.get(requested["improvement_id"])
            assert row["status"] == "promoted"
            assert git(repo, "merge-base", "--is-ancestor", row["git_commit_hash"], "main") == ""


@pytest.mark.usefixtures("warm_baseline")
async def test_reject_and_rollback_over_the_socket(repo, daemon_options):
    async with run_daemon(
        daemon_options(policy=LIMITED, defaults={"require_approval": False})
    ) as daemon:
        async with Client(daemon.socket_path) as client:
            await client.request("subscribe")
            await client.request("run_now")
            promoted = await next_event(client, "ChangePromoted")
            await next_event(client, "CycleFinished")
            with pytest.raises(DaemonError) as refused:
                await client.request("reject", id=promoted["improvement_id"], reason="no")
            assert refused.value.type == "refused"
            with pytest.raises(DaemonError) as bad:
                await client.request("reject", id=promoted["improvement_id"])
            assert bad.value.type == "bad_request" and "reason" in bad.value.message
            after = await client.request(
                "rollback", id=promoted["improvement_id"], reason="regression"
            )
            assert after["status"] == "rolled_back"
            assert git(repo, "log", "-1", "--format=%s").startswith(
                'Revert "Autonomous improvement'
            )
            event = await next_event(client, "ChangeRolledBack")
            assert event["reason"] == "regression"


@pytest.mark.usefixtures("warm_baseline")
async def test_pause_blocks_the_scheduler_and_resume_lets_it_run(tmp_path, daemon_options):
    async with run_daemon(daemon_options(every=1)) as daemon:
        async with Client(daemon.socket_path) as client:
            await client.request("subscribe")
            await client.request("pause", reason="incident 42")
            skipped = await next_event(client, "CycleSkipped", timeout=10)
            assert "paused" in skipped["reason"]
            status = await client.request("status")
            assert status["state"] == "paused" and status["paused"]["reason"] == "incident 42"
            with pytest.raises(DaemonError, match="paused"):
                await client.request("run_now")
            assert rows(tmp_path / "state", "cycles") == []
            await client.request("resume")
            await next_event(client, "CycleStarted", timeout=10)


async def test_the_pause_survives_a_restart(daemon_options):
    opts = daemon_options()
    async with run_daemon(opts) as daemon, Client(daemon.socket_path) as client:
        await client.request("pause")
    async with run_daemon(opts) as daemon, Client(daemon.socket_path) as client:
        assert (await client.request("status"))["state"] == "paused"


@pytest.mark.usefixtures("warm_baseline")
async def test_history_show_and_stats(tmp_path, daemon_options):
    async with run_daemon(
        daemon_options(policy=LIMITED, defaults={"require_approval": False})
    ) as daemon:
        async with Client(daemon.socket_path) as client:
            await client.request("subscribe")
            await client.request("run_now")
            await next_event(client, "CycleFinished")
            page = await client.request("history", limit=10)
            assert page["total"] == 1
            [row] = page["attempts"]
            assert "generated_code" not in row  # the list is light; show has everything
            shown = await client.request("show", id=row["improvement_id"][:6])
            assert "-import json" in shown["generated_code"]
            assert [e["kind"] for e in shown["events"]][0] == "PhaseStarted"
            with pytest.raises(DaemonError) as missing:
                await client.request("show", id="abcdef12")
            assert missing.value.type == "not_found"
            assert (await client.request("history", search="nothing-like-this"))["total"] == 0

            # stats: all targets, or one by name; a bad argument or an unknown name refused
            # with what and where.
            every = await client.stats()
            assert every["target"] is None
            [pattern] = every["patterns"]
            assert (pattern["change_type"], pattern["attempts"], pattern["kept"]) == (
                "quality",
                1,
                1,
            )
            assert "new_tests" in every and "repair_rounds" in every
            assert await client.stats("proj") == {**every, "target": "proj"}
            with pytest.raises(DaemonError) as bad:
                await client.request("stats", target=7)
            assert bad.value.type == "bad_request" and bad.value.title == "Bad arguments for stats"
            assert bad.value.message.startswith("target: Input should be a valid string")
            with pytest.raises(DaemonError) as unknown:
                await client.stats("nope")
            assert unknown.value.type == "not_found"
            assert unknown.value.message == (
                "no target named 'nope' in the configuration or the history; configured: proj"
            )

        # `overseer stats` asks the daemon first (here with an empty state directory of its
        # own, which it never reads) and says the same as it does reading the history offline.
        asked = await asyncio.to_thread(
            overseer,
            "stats",
            "--json",
            "--state-dir",
            str(tmp_path / "elsewhere"),
            env={"OVERSEER_SOCKET": str(daemon.socket_path)},
        )
        offline = await asyncio.to_thread(
            overseer, "stats", "--json", "--state-dir", str(tmp_path / "state")
        )
        assert asked.returncode == 0 == offline.returncode, asked.stderr + offline.stderr
        assert (
            json.loads(asked.stdout) == json.loads(offline.stdout) == json.loads(json.dumps(every))
        )


# -- a hostile or broken client never hurts the daemon --------------------------------------


async def raw(path, *lines: bytes, read: int = 1) -> list[dict]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    for line in lines:
        writer.write(line)
    await writer.drain()
    out = []
    for _ in range(read):
        line = await asyncio.wait_for(reader.readline(), 10)
        if not line:
            break
        out.append(json.loads(line))
    writer.close()
    return out


HELLO = b'{"id": 0, "op": "hello", "args": {"protocol": 1}}\n'


async def test_garbage_unknown_ops_and_bad_arguments_get_errors(daemon_options):
    async with run_daemon(daemon_options()) as daemon:
        path = daemon.socket_path
        [early] = await raw(path, b'{"id": 1, "op": "status"}\n')
        assert early["error"]["type"] == "handshake_required" and early["id"] == 1
        answers = await raw(
            path,
            HELLO,
            b"this is not json\n",
            b"[1, 2, 3]\n",
            b'{"id": 7, "op": "format_disk"}\n',
            b'{"id": 8, "op": "approve", "args": {"reason": "no id"}}\n',
            b'{"id": 9, "op": "status", "args": {"verbose": true}}\n',
            b'{"id": 10, "op": "ping"}\n',
            read=7,
        )
        by_id = {a["id"]: a for a in answers}
        assert by_id[0]["ok"]
        errors = [a["error"]["type"] for a in answers if a["id"] is None]
        assert sorted(errors) == ["bad_json", "bad_request"]
        assert (
            by_id[7]["error"]["type"] == "unknown_op"
            and "format_disk" in by_id[7]["error"]["message"]
        )
        assert by_id[8]["error"]["type"] == "bad_request" and "id" in by_id[8]["error"]["message"]
        assert by_id[9]["error"]["type"] == "bad_request"
        assert by_id[10] == {"id": 10, "ok": True, "result": {"pong": True}}
        [mismatch] = await raw(path, b'{"id": 1, "op": "hello", "args": {"protocol": 99}}\n')
        assert mismatch["error"]["type"] == "protocol_mismatch"
        async with Client(path) as client:  # still serving
            assert (await client.request("ping"))["pong"]


async def test_a_huge_line_is_refused_and_the_daemon_keeps_serving(daemon_options):
    async with run_daemon(daemon_options()) as daemon:
        huge = b'{"id": 1, "op": "ping", "pad": "' + b"x" * (3 * 1024 * 1024) + b'"}\n'
        ping = b'{"id": 2, "op": "ping"}\n'
        answers = await raw(daemon.socket_path, HELLO, huge, ping, read=3)
        assert answers[0]["ok"]
        assert answers[1]["error"]["type"] == "line_too_long"
        assert answers[2] == {"id": 2, "ok": True, "result": {"pong": True}}  # same connection
        async with Client(daemon.socket_path) as client:
            assert (await client.request("ping"))["pong"]


async def test_a_request_too_long_for_the_daemon_is_refused_by_the_client_at_once(
    daemon_options,
):
    """The daemon refuses such a line unread, so with no id to answer it by: the client used
    to wait for an answer until its timeout ("the daemon did not answer in time")."""
    from overseer.protocol import MAX_LINE_BYTES

    async with run_daemon(daemon_options()) as daemon, Client(daemon.socket_path) as client:
        with pytest.raises(DaemonError) as refused:
            await client.request("pause", timeout=10, reason="r" * MAX_LINE_BYTES)
        assert refused.value.type == "line_too_long", refused.value.message
        assert f"{MAX_LINE_BYTES:,}" in refused.value.message
        assert (await client.request("ping"))["pong"]  # nothing was sent; the line is clean
        assert daemon.rt.history.get_control("paused") is None


async def test_abrupt_disconnects_do_not_hurt(daemon_options):
    async with run_daemon(daemon_options()) as daemon:
        for payload in (b"", b'{"id": 1, "op": "hel', HELLO + b'{"id": 2, "op": "status"'):
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(daemon.socket_path))
            s.sendall(payload)
            s.close()
        subscriber = Client(daemon.socket_path)
        await subscriber.connect()
        await subscriber.request("subscribe")
        subscriber._writer.transport.abort()  # vanish without a goodbye
        await asyncio.sleep(0.2)
        async with Client(daemon.socket_path) as client:
            await client.request("pause")
            await client.request("resume")
            assert (await client.request("status"))["state"] == "idle"
        for _ in range(50):  # every connection, however it ended, is let go
            if not daemon.connections:
                break
            await asyncio.sleep(0.05)
        assert daemon.connections == set()


async def test_a_slow_subscriber_loses_events_and_is_told_while_others_get_all(daemon_options):
    from overseer.vocabulary import ErrorRaised

    opts = daemon_options(daemon={"event_queue": 200})
    async with run_daemon(opts) as daemon:
        # The slow one subscribes and then does not read at all.
        slow = socket.socket(socket.AF_UNIX)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(str(daemon.socket_path))
        slow.sendall(HELLO + b'{"id": 1, "op": "subscribe"}\n')
        async with Client(daemon.socket_path) as healthy:
            await healthy.request("subscribe")

            def cycle_like():  # events come from the worker thread, as a cycle's do
                for n in range(3000):
                    daemon.rt.bus.emit(ErrorRaised(where="test", message=f"{n} " + "x" * 200))
                    time.sleep(0.0003)

            emitting = asyncio.create_task(asyncio.to_thread(cycle_like))
            got = []
            while len(got) < 3000:
                got.append(await asyncio.wait_for(healthy._events.get(), 10))
            await emitting
            assert [int(e["message"].split()[0]) for e in got] == list(range(3000))
            [slow_conn] = [c for c in daemon.connections if c.outbox.dropped]
            assert slow_conn.outbox.events_queued <= 200  # bounded, whatever the client does
            assert slow_conn.outbox.dropped > 2000
            # When it reads again, it is told how many it missed before the next event.
            slow.setblocking(False)
            received = b""

            async def read_until(done, seconds=10.0):
                nonlocal received
                deadline = time.monotonic() + seconds
                while not done() and time.monotonic() < deadline:
                    try:
                        received += slow.recv(1 << 20)
                    except BlockingIOError:
                        await asyncio.sleep(0.01)

            await read_until(lambda: slow_conn.outbox.events_queued == 0)
            daemon.rt.bus.emit(ErrorRaised(where="test", message="after"))
            await read_until(lambda: b'"after"' in received)
            slow.close()
            events = [
                json.loads(line)["event"] for line in received.splitlines() if b'"event"' in line
            ]
            dropped = [e for e in events if e["kind"] == "EventsDropped"]
            assert len(dropped) == 1 and dropped[0]["count"] > 2000
            assert events[-2]["kind"] == "EventsDropped" and events[-1]["message"] == "after"


@pytest.mark.usefixtures("warm_baseline")
async def test_approvals_expire_with_an_injected_clock(repo, daemon_options):
    clock = FakeClock()
    opts = daemon_options(approvers={"expire_after": "1h"})
    async with run_daemon(opts, clock=clock) as daemon, Client(daemon.socket_path) as client:
        await client.request("subscribe")
        await client.request("run_now")
        requested = await next_event(client, "ApprovalRequested")
        await next_event(client, "CycleFinished")
        clock.advance(1800)
        await asyncio.gather(*await daemon.housekeeping())  # the lanes' work too
        assert (await client.request("status"))["pending_approvals"]
        clock.advance(1801)
        # Too late, even before the housekeeping has recorded it.
        with pytest.raises(DaemonError, match="its approval expired"):
            await client.request("approve", id=requested["improvement_id"], reason="late")
        await asyncio.gather(*await daemon.housekeeping())  # the lanes' work too
        expired = await next_event(client, "ApprovalExpired")
        assert expired["improvement_id"] == requested["improvement_id"]
        shown = await client.request("show", id=requested["improvement_id"])
        assert shown["status"] == "expired" and shown["was_deployed"] == 0
        assert [a["decision"] for a in shown["approvals"]] == ["expired"]
        assert git(repo, "branch", "--list", "overseer/*") == ""


async def test_stale_socket_is_replaced_and_a_live_one_is_not(tmp_path, sample, daemon_options):
    from overseer.daemon.server import DaemonOptions

    opts = daemon_options()
    path = opts.config.daemon.socket
    path.parent.mkdir(mode=0o750)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays; nothing listens
    async with run_daemon(opts) as daemon:
        async with Client(daemon.socket_path) as client:
            assert (await client.request("ping"))["pong"]
        # Another state directory (on a repository of its own), the same socket: the live
        # socket is not taken over.
        other = DaemonOptions(
            opts.config,
            opts.config_path,
            state_dir=tmp_path / "other-state",
            target=sample.copy(tmp_path / "other-proj"),
        )
        with pytest.raises(DaemonFailed, match="already listening"):
            async with run_daemon(other):
                pass
        # The same state directory: refused before it even looks at the socket.
        with pytest.raises(DaemonFailed, match="another daemon runs on this state directory"):
            async with run_daemon(opts):
                pass


async def test_a_socket_directory_others_could_write_is_refused(daemon_options):
    """Whoever can write there could swap the socket and hear approvals: refused, saying so."""
    opts = daemon_options()
    directory = opts.config.daemon.socket.parent
    directory.mkdir()
    directory.chmod(0o777)
    with pytest.raises(DaemonFailed, match=r"is writable by others \(mode 0777\)"):
        async with run_daemon(opts):
            pass
    assert not opts.config.daemon.socket.exists()
    if os.geteuid() == 0:  # CI runs as root: a directory of another user
        directory.chmod(0o750)
        os.chown(directory, 65534, -1)
        with pytest.raises(DaemonFailed, match="belongs to uid 65534, not to this daemon"):
            async with run_daemon(opts):
                pass
        os.chown(directory, 0, -1)
    directory.chmod(0o750)
    async with run_daemon(opts) as daemon, Client(daemon.socket_path) as client:
        assert (await client.request("ping"))["pong"]


async def test_a_stopping_daemon_leaves_its_successors_socket_alone(daemon_options):
    opts = daemon_options()
    path = opts.config.daemon.socket
    async with run_daemon(opts) as daemon:
        daemon.server.close()  # as in shutdown: the old socket's inode is free to reuse
        await daemon.server.wait_closed()
        path.unlink()
        successor = socket.socket(socket.AF_UNIX)
        successor.bind(str(path))
        successor.close()
    assert path.exists(), "the old daemon removed a socket that was not its own"


async def test_without_a_daemon_the_client_says_so(sockdir):
    with pytest.raises(DaemonUnavailable, match="no daemon is running: there is no socket"):
        await Client(sockdir / "none.sock").connect()


async def test_a_policy_edited_to_be_invalid_is_rejected_then_the_fix_applies(
    tmp_path, daemon_options
):
    async with run_daemon(daemon_options()) as daemon:
        async with Client(daemon.socket_path) as client:
            await client.request("subscribe")
            before = (await client.request("status"))["policy_version"]
            policy = tmp_path / "policy.yaml"
            policy.write_text(
                "version: 2\nautonomy: supervised\nrules:\n  - name: x\n    risk: huge\n"
            )
            failed = await next_event(client, "ReloadFailed", timeout=20)
            assert failed["problems"] == [
                f"{policy}:5: rules[0].risk: Input should be 'low', 'medium' or 'high' (got 'huge')"
            ]
            status = await client.request("status")
            assert status["policy_version"] == before and status["autonomy"] == "supervised"
            policy.write_text("version: 2\nautonomy: limited\n")
            reloaded = await next_event(client, "ConfigReloaded", timeout=20)
            assert reloaded["policy_version"].startswith("v2:")
            assert "autonomy supervised → limited" in reloaded["changes"]
            status = await client.request("status")
            assert (
                status["autonomy"] == "limited"
                and status["policy_version"] == reloaded["policy_version"]
            )


async def test_a_schedule_change_is_applied_on_reload(daemon_options):
    import yaml

    opts = daemon_options()
    async with run_daemon(opts) as daemon, Client(daemon.socket_path) as client:
        await client.request("subscribe")
        data = yaml.safe_load(opts.config_path.read_text())
        data["schedule"] = {"cron": "*/5 * * * *"}
        opts.config_path.write_text(yaml.safe_dump(data))
        reloaded = await next_event(client, "ConfigReloaded", timeout=20)
        assert "schedule changed" in reloaded["changes"]
        status = await client.request("status")
        assert status["schedule"] == status["targets"][0]["schedule"] == "cron */5 * * * *"
        # A target's own schedule, and cycles at once, apply at once too.
        data["targets"][0]["schedule"] = {"every": "2h"}
        data["daemon"]["max_parallel_cycles"] = 3
        before = daemon.cycle_slots.limit  # the default: half the cores, at least 1
        opts.config_path.write_text(yaml.safe_dump(data))
        own = await next_event(client, "ConfigReloaded", timeout=20)
        assert own["changes"] == ["targets changed", f"daemon.max_parallel_cycles {before} → 3"]
        [target] = (await client.request("status"))["targets"]
        assert target["schedule"] == "every 2h" and daemon.cycle_slots.limit == 3
        data["daemon"]["socket"] = "/elsewhere.sock"
        opts.config_path.write_text(yaml.safe_dump(data))
        again = await next_event(client, "ConfigReloaded", timeout=20)
        assert "daemon changed (takes effect after a restart)" in again["changes"]


@pytest.mark.usefixtures("warm_baseline")
async def test_a_reload_says_which_attempts_the_new_policy_would_judge_differently(
    tmp_path, daemon_options
):
    async with run_daemon(daemon_options()) as daemon:
        async with Client(daemon.socket_path) as client:
            await client.request("subscribe")
            await client.request("run_now")
            requested = await next_event(client, "ApprovalRequested")
            await next_event(client, "CycleFinished")
            (tmp_path / "policy.yaml").write_text(
                "autonomy: supervised\nprotected_paths: ['pkg/**']\n"
            )
            reloaded = await next_event(client, "ConfigReloaded", timeout=20)
            [changed] = reloaded["reverdicts"]
            assert changed["improvement_id"] == requested["improvement_id"]
            assert changed["status"] == "awaiting_approval"
            assert changed["before"] == {"decision": "needs_approval", "risk": "low"}
            assert changed["after"] == {"decision": "deny", "risk": "high"}
            assert any("touches protected path pkg/util.py" in why for why in changed["why"])


async def test_the_cycle_job_runs_one_at_a_time_coalesced_with_a_grace_time():
    from apscheduler.triggers.cron import CronTrigger

    from overseer.config import Schedule
    from overseer.daemon.scheduler import CYCLE_JOB, HOUSEKEEPING_JOB, CycleScheduler

    async def nothing() -> None:
        pass

    async def nothing_on(target: str) -> None:
        pass

    scheduler = CycleScheduler(nothing_on, nothing, 300, 60)
    scheduler.set_targets({"a": Schedule(cron="*/30 9-17 * * mon-fri"), "b": Schedule(every=60)})
    scheduler.start()
    try:
        job = scheduler.scheduler.get_job(CYCLE_JOB + "a")
        assert job.max_instances == 1 and job.coalesce is True
        assert job.misfire_grace_time == 300 and job.args == ("a",)
        assert isinstance(job.trigger, CronTrigger)
        # The soonest of all targets' next runs, and each target's own.
        assert scheduler.next_run() == scheduler.next_run("b") <= scheduler.next_run("a")
        # A reload: one target's schedule changes, one goes, one comes.
        scheduler.set_targets({"b": Schedule(every=7200), "c": Schedule(every=60)})
        assert scheduler.scheduler.get_job(CYCLE_JOB + "a") is None
        assert scheduler.scheduler.get_job(CYCLE_JOB + "b").trigger.interval.total_seconds() == 7200
        assert scheduler.describe("c") == "every 1m" and scheduler.describe("a") is None
        housekeeping = scheduler.scheduler.get_job(HOUSEKEEPING_JOB)
        assert housekeeping.trigger.interval.total_seconds() == 60
    finally:
        scheduler.scheduler.shutdown(wait=False)
