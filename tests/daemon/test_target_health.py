"""A daemon never looks healthy while it can do nothing (issue 15): it does not start on a
configuration with problems, it shows a target that became unusable and refuses to start a
cycle on it, and a target whose tests cannot be evaluated is an error in its log, its events
and its status."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil

import pytest

from overseer.client import Client, DaemonError
from overseer.daemon.server import DaemonFailed, run_daemon
from support.daemons import DaemonProcess
from support.helpers import daemon_config, next_event, overseer, rows


def test_the_daemon_does_not_start_on_any_problem_config_check_finds(tmp_path, repo, sockdir):
    (tmp_path / "policy.yaml").write_text("autonomy: sometimes\n")
    config = tmp_path / "overseer.yaml"
    config.write_text(
        "policy: policy.yaml\n"
        "defaults: {dry_run: maybe}\n"
        "targets:\n"
        "  - path: /srv/myservice-that-is-not-here\n"
        f"  - path: {repo}\n"
        "    name: second\n"
        "    branch: release\n"
    )
    out = overseer(
        "daemon", "--config", str(config), "--socket", str(sockdir / "s.sock"), timeout=60
    )
    assert out.returncode == 1, out.stdout + out.stderr
    found = [line for line in out.stderr.splitlines() if not line.startswith("overseer:")]
    check = overseer("config", "check", str(config))
    assert found == check.stdout.splitlines()  # the same list, all at once
    assert len(found) == 4 and any("defaults.dry_run" in line for line in found)
    assert any("autonomy" in line for line in found)
    assert any("myservice-that-is-not-here does not exist" in line for line in found)
    assert any("no branch 'release'" in line for line in found)
    assert "the configuration has 4 problem(s)" in out.stderr
    assert "the daemon did not start" in out.stderr and "ready" not in out.stderr
    assert not (sockdir / "s.sock").exists()

    gone = overseer(
        "daemon",
        "--target",
        str(tmp_path / "gone"),
        "--state-dir",
        str(tmp_path / "s"),
        "--socket",
        str(sockdir / "s.sock"),
        timeout=60,
    )
    assert gone.returncode == 1
    assert f"target gone cannot be used: {tmp_path / 'gone'} does not exist" in gone.stderr


async def test_a_target_that_becomes_unusable_is_shown_and_not_started(
    tmp_path, repo, daemon_options
):
    moved = tmp_path / "moved"
    async with run_daemon(daemon_options()) as daemon:
        async with Client(daemon.socket_path) as client:
            [healthy] = (await client.request("status"))["targets"]
            assert healthy["healthy"] is True and healthy["reason"] is None
            shutil.move(repo, moved)  # the directory is gone (a redeploy, a cleanup)
            await asyncio.sleep(STATUS_FRESH)  # the status's cache holds a second
            [target] = (await client.request("status"))["targets"]
            assert target["healthy"] is False and target["reason"] == f"{repo} does not exist"
            with pytest.raises(DaemonError) as refused:
                await client.request("run_now")
            assert refused.value.type == "refused" and "cannot be used" in refused.value.message
            env = {"OVERSEER_SOCKET": str(daemon.socket_path)}
            cli = await asyncio.to_thread(overseer, "run-now", env=env)
            assert cli.returncode == 1 and "cycle started" not in cli.stdout
            assert f"target proj cannot be used: {repo} does not exist" in cli.stderr
            text = (await asyncio.to_thread(overseer, "status", env=env)).stdout
            assert f"target proj ({repo}) on main: UNUSABLE — {repo} does not exist" in text

            await client.request("subscribe")
            await asyncio.gather(*await daemon.housekeeping())
            error = await next_event(client, "TargetUnhealthy")
            assert error["reason"] == f"{repo} does not exist" and error["target"] == "proj"

            shutil.move(moved, repo)
            await asyncio.sleep(STATUS_FRESH)
            [back] = (await client.request("status"))["targets"]
            assert back["healthy"] is True
            assert (await client.request("run_now"))["started"] is True
            await next_event(client, "CycleFinished")


STATUS_FRESH = 1.1  # handlers.STATUS_FRESH_SECONDS, and a little


async def test_a_target_whose_tests_do_not_run_is_an_error_in_the_log_events_and_status(
    tmp_path, daemon_options, caplog
):
    options = daemon_options(target={"test_command": "no-such-command"})
    with caplog.at_level(logging.INFO, logger="overseer"):
        async with run_daemon(options) as daemon:
            async with Client(daemon.socket_path) as client:
                await client.request("subscribe")
                await client.request("run_now")
                event = await next_event(client, "TargetNotEvaluable")
                finished = await next_event(client, "CycleFinished")
                status = await client.request("status")
                env = {"OVERSEER_SOCKET": str(daemon.socket_path)}
                text = (await asyncio.to_thread(overseer, "status", env=env)).stdout
    assert event["target"] == "proj" and event["command"] == "no-such-command"
    assert "exit status 127" in event["reason"] and "not found" in event["output"]
    assert finished["status"] == "failed"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(
        "proj cannot be evaluated" in r.getMessage()
        and "no-such-command: not found" in r.getMessage()
        for r in errors
    ), [r.getMessage() for r in caplog.records]
    [target] = status["targets"]
    assert target["last_cycle"]["status"] == "failed"
    assert "not found" in target["last_cycle"]["output_tail"]
    assert "last cycle " in text and "FAILED — cannot be evaluated" in text
    assert rows(tmp_path / "state") == []  # no attempt: nothing settled, nothing counted


@pytest.mark.usefixtures("warm_baseline")
def test_the_daemon_takes_the_run_flags_of_run_once(tmp_path, repo, sockdir):
    sock = sockdir / "run" / "s.sock"
    policy = "version: 1\nautonomy: supervised\nmax_changes_per_run: 3\n"
    config, _ = daemon_config(tmp_path, repo, sock, policy=policy, defaults={"dry_run": True})
    daemon = DaemonProcess(
        config, sock, args=("--no-dry-run", "--max-changes", "2", "--no-require-approval")
    )
    try:
        daemon.wait_ready()
        status = json.loads(daemon.cli("status", "--json").stdout)
        assert status["dry_run"] is False and "--no-dry-run" in status["dry_run_why"]
        assert status["max_changes"] == 2 and status["require_approval"] is False
        assert "dry-run OFF" in daemon.cli("status").stdout
        assert "cycle started" in daemon.cli("run-now").stdout
        daemon.wait_for_log("finished (ok)")
    finally:
        code = daemon.stop()
    assert code == 0, daemon.output()
    [attempt] = rows(tmp_path / "state")
    assert attempt["dry_run"] == 0 and attempt["status"] == "awaiting_approval"  # supervised
    bad = overseer("daemon", "--config", str(config), "--max-changes", "-1")
    assert bad.returncode == 2 and "--max-changes" in bad.stderr


async def test_a_daemon_on_an_unusable_target_does_not_start(tmp_path, repo, daemon_options):
    options = daemon_options(target={"branch": "release"})
    with pytest.raises(DaemonFailed, match="target proj cannot be used: branch 'release'"):
        async with run_daemon(options):
            pass


@pytest.mark.usefixtures("warm_baseline")
async def test_a_run_now_checks_its_targets_once(tmp_path, repo, daemon_options):
    # The request's check is the cycle's: the same git commands twice cost a run-now 4 ms.
    async with run_daemon(daemon_options()) as daemon:
        async with Client(daemon.socket_path) as client:
            await client.request("subscribe")  # its status checks the targets too
            checks = []
            problems = daemon.app.target_problems

            def counted() -> dict[str, str | None]:
                checks.append(1)
                return problems()

            daemon.app.target_problems = counted  # type: ignore[method-assign]
            assert (await client.request("run_now"))["started"] is True
            finished = await next_event(client, "CycleFinished")
    assert finished["status"] == "ok" and len(checks) == 1
