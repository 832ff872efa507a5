"""Several targets in one daemon: cycles on different targets at once, bounded by
`daemon.max_parallel_cycles`, the longest due first; a decision on one target never waits for
another's tests; the status of each target. Real daemons (in this process) on real
repositories, one of them with tests that wait for a file the test creates."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from overseer.client import Client
from overseer.daemon.server import DaemonOptions, run_daemon
from support.gated import gated_repo
from support.helpers import daemon_config, git, next_event, overseer, rows


def fleet_options(tmp_path: Path, repo: Path, slow: Path, sockdir: Path, parallel: int):
    """`proj` (the sample, its baseline warm) and `slow` (tests that wait for the gate, with a
    schedule of its own), at most `parallel` cycles at once."""
    path, config = daemon_config(
        tmp_path,
        repo,
        sockdir / "run" / "s.sock",
        daemon={"max_parallel_cycles": parallel, "max_test_runs": 2},
        targets=[
            {"name": "proj", "path": str(repo), "ruff_select": ["F"]},
            {"name": "slow", "path": str(slow), "ruff_select": ["F"], "schedule": {"every": "2h"}},
        ],
    )
    return DaemonOptions(config=config, config_path=path)


def spans(state_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """Each target's cycles, in order, as (first, last) of their recorded phase timestamps."""
    target_of = {c["cycle_id"]: c["target"] for c in rows(state_dir, "cycles")}
    stamps: dict[str, list[str]] = {}
    for e in rows(state_dir, "phase_events"):
        if e["kind"] in ("PhaseStarted", "PhaseFinished") and e["cycle_id"]:
            stamps.setdefault(e["cycle_id"], []).append(e["at"])
    found: dict[str, list[tuple[str, str]]] = {}
    for cycle_id, at in stamps.items():
        found.setdefault(target_of[cycle_id], []).append((min(at), max(at)))
    return {target: sorted(s) for target, s in found.items()}


async def status_until(client: Client, done: Any, seconds: float = 60) -> dict[str, Any]:
    """Ask for the status until `done(targets by name)` holds; that status."""
    deadline = time.monotonic() + seconds
    while True:
        status = await client.request("status")
        by_name = {t["name"]: t for t in status["targets"]}
        if done(by_name):
            return status
        assert time.monotonic() < deadline, f"never: {by_name}"
        await asyncio.sleep(0.1)


async def test_two_targets_cycle_at_once_and_an_approval_on_one_is_promoted_while_the_other_tests(
    tmp_path, repo, sample, sockdir
):
    gate = tmp_path / "gate"
    slow = gated_repo(sample, tmp_path / "slow", gate)
    sample.warm(tmp_path / "state", repo)
    options = fleet_options(tmp_path, repo, slow, sockdir, parallel=2)
    async with run_daemon(options) as daemon, Client(daemon.socket_path) as client:
        await client.request("subscribe")
        assert sorted((await client.request("run_now"))["targets"]) == ["proj", "slow"]
        requested = await next_event(
            client, "ApprovalRequested", where=lambda e: e["target"] == "proj"
        )
        await next_event(client, "CycleFinished", where=lambda e: e["target"] == "proj")
        # slow's tests wait for the gate: its cycle is in ANALYZE, and stays there.
        status = await status_until(client, lambda t: (t["slow"]["current"] or {}).get("phase"))
        targets = {t["name"]: t for t in status["targets"]}
        assert targets["slow"]["state"] == "running"
        assert targets["slow"]["current"]["phase"] == "ANALYZE"
        assert targets["proj"]["state"] == "idle" and targets["proj"]["current"] is None
        assert status["current"]["target"] == "slow"  # the one clients that know one show
        assert (targets["slow"]["schedule"], targets["proj"]["schedule"]) == (
            "every 2h",
            "every 1h",
        )
        assert targets["slow"]["next_run"] > targets["proj"]["next_run"]

        # The approval on proj is promoted while slow's tests still wait (the gate is shut):
        # in proj's lane, where nothing else is queued (under load the promotion's own test
        # run may outlast the answer's wait, and the answer says "queued").
        iid = requested["improvement_id"]
        after = await client.request("approve", id=iid, reason="ok")
        if after.get("queued"):
            assert "behind 0 job(s)" in after["message"], after
            await next_event(client, "ChangePromoted", where=lambda e: e["improvement_id"] == iid)
        [promoted] = [r for r in rows(tmp_path / "state") if r["status"] == "promoted"]
        assert git(repo, "rev-parse", "main") == promoted["git_commit_hash"]
        text = (
            await asyncio.to_thread(
                overseer, "status", env={"OVERSEER_SOCKET": str(daemon.socket_path)}
            )
        ).stdout
        [slow_line] = [line for line in text.splitlines() if line.startswith("target slow")]
        assert slow_line.startswith(f"target slow ({slow}) on main: RUNNING cycle ")
        assert " ANALYZE " in slow_line and "every 2h, next cycle " in slow_line
        assert f"target proj ({repo}) on main: IDLE · every 1h, next cycle " in text
        assert daemon.cycle_slots.running == {"slow"}

        gate.touch()
        await next_event(client, "CycleFinished", where=lambda e: e["target"] == "slow")
    assert daemon.cycle_slots.peak == 2
    cycles = spans(tmp_path / "state")
    [(proj_first, proj_last)] = cycles["proj"]
    [(slow_first, slow_last)] = cycles["slow"]
    assert slow_first < proj_last and proj_first < slow_last, cycles  # they overlap
    assert slow_first < promoted["completed_at"] < slow_last  # promoted while slow ran


async def test_with_one_slot_the_longest_due_goes_first_and_a_stop_reaches_every_lane(
    tmp_path, repo, sample, sockdir
):
    gate = tmp_path / "gate"
    slow = gated_repo(sample, tmp_path / "slow", gate)
    sample.warm(tmp_path / "state", repo)
    options = fleet_options(tmp_path, repo, slow, sockdir, parallel=1)
    async with run_daemon(options) as daemon, Client(daemon.socket_path) as client:
        assert await daemon.run_cycles("test", ["proj"]) == ""  # proj has had a cycle now
        await client.request("subscribe")
        # Both due: slow, never cycled, goes before proj, which comes first in the file.
        await client.request("run_now")
        status = await status_until(client, lambda t: t["slow"]["state"] == "running")
        assert {t["name"]: t["state"] for t in status["targets"]} == {
            "proj": "waiting",
            "slow": "running",
        }
        assert daemon.cycle_slots.waiting == {"proj"}
        # The daemon stops now: slow's tests are cut off after the grace time, and proj's
        # cycle, still waiting for the slot, never starts.
    assert not daemon.worker_stuck and daemon.cycle_slots.peak == 1
    assert daemon.cycle_slots.waiting == set() and daemon.cycle_slots.running == set()
    cycles = spans(tmp_path / "state")
    [(_, proj_last)] = cycles["proj"]
    [(slow_first, _)] = cycles["slow"]
    assert proj_last < slow_first, cycles
    by_target = {c["target"]: c["status"] for c in rows(tmp_path / "state", "cycles")}
    assert by_target == {"proj": "ok", "slow": "interrupted"}
