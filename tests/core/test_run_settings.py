"""What a cycle will really do is said the same way everywhere: with `autonomy: observe` every
cycle is a dry run, whatever `defaults.dry_run` says, and `status` (daemon or not), the TUI and
the cycle itself all say so, with why."""

from __future__ import annotations

import asyncio
import json

from overseer.client import Client
from overseer.daemon.server import DaemonOptions, run_daemon
from support.helpers import daemon_config, next_event, overseer

OBSERVE = "version: 1\nautonomy: observe\n"


def observing(tmp_path, repo, sockdir):
    # defaults.dry_run is false in daemon_config: only the policy makes the runs dry.
    path, config = daemon_config(tmp_path, repo, sockdir / "s.sock", policy=OBSERVE)
    assert config.defaults.dry_run is False
    return path, config


def test_without_a_daemon_status_says_every_cycle_is_a_dry_run_and_why(tmp_path, repo, sockdir):
    path, _ = observing(tmp_path, repo, sockdir)
    out = overseer("status", "--json", "--config", str(path))
    assert out.returncode == 3, out.stderr  # no daemon
    status = json.loads(out.stdout)
    assert status["dry_run"] is True
    assert "autonomy is observe" in status["dry_run_why"]
    text = overseer("status", "--config", str(path))
    assert "dry-run on: the policy's autonomy is observe" in text.stdout


async def test_the_daemon_the_tui_and_the_cycle_all_say_dry_run(tmp_path, repo, sockdir):
    from overseer.tui.app import OverseerApp
    from overseer.tui.widgets.status_bar import StatusBar

    path, config = observing(tmp_path, repo, sockdir)
    async with run_daemon(DaemonOptions(config=config, config_path=path)) as daemon:
        async with Client(daemon.socket_path) as client:
            status = await client.request("status")
            assert status["dry_run"] is True, status
            assert "autonomy is observe" in status["dry_run_why"]
            await client.request("subscribe")
            await client.request("run_now")
            started = await next_event(client, "CycleStarted")
            assert started["dry_run"] is True
            finished = await next_event(client, "CycleFinished")
            assert "dry_run" in finished["summary"], finished["summary"]
        out = await asyncio.to_thread(
            overseer, "status", env={"OVERSEER_SOCKET": str(daemon.socket_path)}
        )
        assert "dry-run on" in out.stdout and "dry-run OFF" not in out.stdout, out.stdout

        app = OverseerApp(daemon.socket_path)
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(100):
                await pilot.pause(0.05)
                if app.status:
                    break
            bar = str(app.query_one(StatusBar).render())
            assert "dry-run on" in bar and "dry-run off" not in bar, bar
