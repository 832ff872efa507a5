"""Snapshot tests of the dashboard, the approval dialog and the history screen.

The app is the real one, over a real socket; the daemon on the other end replays fixed
protocol data (what a real daemon sent, with fixed ids and times), so the pictures are stable.
Update them after an intended change with `pytest --snapshot-update`, and look at them.
Column widths are measured when the rows are given (widgets/changes.FittedTable), so a busy
machine draws the same picture as a quiet one.
"""

from __future__ import annotations

import os
import time

import pytest

from overseer.tui.app import OverseerApp
from overseer.tui.widgets.changes import ChangesTable
from support.replay import ReplayDaemon

SIZE = (130, 40)
DIFF = "\n".join(
    [
        "--- a/pkg/util.py",
        "+++ b/pkg/util.py",
        "@@ -1,5 +1,3 @@",
        "-import json",
        "-import os",
        " ",
        " ",
        " def double(x):",
        "",
    ]
)
PENDING = {
    "improvement_id": "7f3a2c1b9d4e",
    "target": "myservice",
    "status": "awaiting_approval",
    "phase": "RECORD",
    "change_type": "quality",
    "risk_level": "low",
    "risk_reasons": [
        "ruff_fix rates it low",
        "autonomy supervised: every promotion is approved",
        "this run requires approval",
    ],
    "target_file": "pkg/util.py",
    "generator": "ruff_fix",
    "finding_kind": "F401",
    "summary": "fix F401 (unused-import) in pkg/util.py",
    "success_score": 0.91,
    "tests_passed": 312,
    "tests_failed": 0,
    "tests_skipped": 2,
    "performance_delta": None,
    "was_deployed": 0,
    "was_rolled_back": 0,
    "dry_run": 0,
    "started_at": "2026-11-25T14:02:11.000+00:00",
    "completed_at": None,
    "rolled_back_at": None,
    "awaiting_since": "2026-11-25T14:02:14.000+00:00",
    "approved_by": None,
    "git_branch": "overseer/7f3a2c1b9d4e",
    "git_commit_hash": "1c9e2d4a7b3f5e6d8c9b0a1f2e3d4c5b6a7f8e9d",
    "revert_commit_hash": None,
    "failure_reason": None,
    "expires_at": "2026-11-26T14:02:14+00:00",
}
PROMOTED = {
    **PENDING,
    "improvement_id": "51bc0e8f2a6d",
    "status": "promoted",
    "change_type": "optimization",
    "risk_level": "medium",
    "target_file": "pkg/dicttoolz.py",
    "finding_kind": "PERF401",
    "summary": "fix PERF401 (manual-list-comprehension) in pkg/dicttoolz.py",
    "success_score": 0.64,
    "performance_delta": 3.2,
    "was_deployed": 1,
    "started_at": "2026-11-25T13:32:05.000+00:00",
    "completed_at": "2026-11-25T13:32:40.000+00:00",
    "awaiting_since": None,
    "approved_by": "alice",
    "git_commit_hash": "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d",
}
STATUS = {
    "state": "idle",
    "paused": None,
    "autonomy": "supervised",
    "policy": "/etc/overseer/policy.yaml",
    "policy_version": "v1:0123456789",
    "dry_run": False,
    "require_approval": True,
    "max_changes": 1,
    "schedule": "every 30m",
    "next_run": "2026-11-25T14:30:00+00:00",
    "current": None,
    "targets": [
        {
            "name": "myservice",
            "path": "/srv/myservice",
            "branch": "main",
            "budget": {"hour": {"used": 2, "limit": 3}, "day": {"used": 7, "limit": 10}},
            "healthy": True,
            "reason": None,
            "last_cycle": {
                "cycle_id": "7f3a2c1b0000",
                "target": "myservice",
                "started_at": "2026-11-25T14:02:11.000+00:00",
                "finished_at": "2026-11-25T14:02:19.000+00:00",
                "status": "ok",
                "dry_run": False,
            },
            "state": "idle",
            "current": None,
            "schedule": "every 30m",
            "next_run": "2026-11-25T14:30:00+00:00",
        },
        {
            "name": "billing",
            "path": "/srv/billing",
            "branch": "release",
            "budget": {"hour": {"used": 0, "limit": 3}, "day": {"used": 1, "limit": 10}},
            "healthy": True,
            "reason": None,
            "last_cycle": {
                "cycle_id": "2b7d9e1f0000",
                "target": "billing",
                "started_at": "2026-11-25T13:40:02.000+00:00",
                "finished_at": "2026-11-25T13:41:30.000+00:00",
                "status": "failed",
                "dry_run": False,
            },
            "state": "idle",
            "current": None,
            "schedule": "every 1h",
            "next_run": "2026-11-25T14:40:00+00:00",
        },
    ],
    "pending_approvals": [PENDING],
    "queue": 0,
    "clients": 1,
    "subscribers": 1,
    "pid": 4242,
    "version": "0.1.0",
    "started_at": "2026-11-25T08:00:00+00:00",
    "socket": "/run/overseer/overseer.sock",
    "state_dir": "/var/lib/overseer",
}


def phase_events() -> list[dict]:
    cycle = "7f3a2c1b0000"
    at = "2026-11-25T14:02:{:02d}.000+00:00"
    summaries = {
        "ANALYZE": (1.8, "ok", "312 tests, 2 slow, 41 lint findings"),
        "GENERATE": (0.4, "ok", "ruff_fix F401 in pkg/util.py"),
        "SAFETY": (
            0.0,
            "ok",
            "risk low · approval required (autonomy supervised: every promotion is approved)",
        ),
        "DEPLOY": (0.3, "ok", "overseer/7f3a2c1b9d4e @ 1c9e2d4"),
        "EVALUATE": (
            2.9,
            "ok",
            "312 passed, 0 failed (baseline 312 passed, 0 failed) · awaiting approval",
        ),
        "LEARN": (0.0, "skipped", "outcome pending: waits for a decision"),
        "RECORD": (0.0, "ok", "row 7f3a2c1b: awaiting approval"),
    }
    events = [
        {
            "kind": "CycleStarted",
            "at": at.format(11),
            "cycle_id": cycle,
            "target": "myservice",
            "branch": "main",
            "dry_run": False,
            "parameters": {"autonomy": "supervised", "max_changes": 1, "area": "auto"},
        }
    ]
    second = 11
    for name, (duration, outcome, summary) in summaries.items():
        iid = None if name == "ANALYZE" else PENDING["improvement_id"]
        events.append(
            {
                "kind": "PhaseStarted",
                "at": at.format(second),
                "cycle_id": cycle,
                "improvement_id": iid,
                "phase": name,
            }
        )
        events.append(
            {
                "kind": "PhaseFinished",
                "at": at.format(second),
                "cycle_id": cycle,
                "improvement_id": iid,
                "phase": name,
                "duration": duration,
                "outcome": outcome,
                "summary": summary,
            }
        )
        second += 1
    events.append(
        {
            "kind": "CycleFinished",
            "at": at.format(19),
            "cycle_id": cycle,
            "target": "myservice",
            "status": "ok",
            "summary": "7f3a2c1b awaiting_approval",
            "attempts": [PENDING["improvement_id"]],
        }
    )
    return events


STATS = {  # a `stats` answer (the figures of bench/generation_funnel.py's funnel among them)
    "patterns": [
        {
            "change_type": "quality",
            "risk_level": "low",
            "attempts": 14,
            "kept": 11,
            "average_score": 0.82,
            "rollbacks": 1,
            "average_perf_delta": None,
        },
        {
            "change_type": "optimization",
            "risk_level": "medium",
            "attempts": 5,
            "kept": 2,
            "average_score": 0.55,
            "rollbacks": 0,
            "average_perf_delta": 4.1,
        },
    ],
    "areas": [
        {"area": "quality", "attempts": 16, "kept": 12, "rollbacks": 1},
        {"area": "performance", "attempts": 3, "kept": 1, "rollbacks": 0},
    ],
    "most_successful": [
        {"finding_kind": "F401", "generator": "ruff_fix", "attempts": 9, "kept": 9, "rate": 1.0}
    ],
    "least_successful": [
        {"finding_kind": "slow_test", "generator": "llm", "attempts": 3, "kept": 1, "rate": 0.333}
    ],
    "predictor": {
        "version": None,
        "note": "the prior: Beta(1, 1) per generator × finding kind until 20 outcomes",
    },
    "outcomes": 12,
    "repair_rounds": {"llm": {"0": 3, "1": 2}},
    "new_tests": {
        "llm": {
            "generated": 18,
            "collected": 9,
            "reliable": 6,
            "raised_coverage": 3,
            "approved": 3,
            "kept": 3,
            "denied": 6,
            "waiting": 0,
        }
    },
}
SCRIPT = {
    "hello": {
        "protocol": 1,
        "server": "overseer 0.1.0",
        "pid": 4242,
        "user": "alice",
        "uid": 1000,
        "approver": True,
    },
    "status": STATUS,
    "history": [PENDING, PROMOTED],
    "show": {
        PENDING["improvement_id"]: {
            **PENDING,
            "generated_code": DIFF,
            "events": [],
            "approvals": [],
        },
        PROMOTED["improvement_id"]: {
            **PROMOTED,
            "generated_code": "",
            "events": [],
            "approvals": [],
        },
    },
    "events": phase_events(),
    "stats": STATS,
}


@pytest.fixture
def replay(sockdir):
    saved_tz = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        with ReplayDaemon(sockdir / "s.sock", SCRIPT) as daemon:
            yield daemon
    finally:
        if saved_tz is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved_tz
        time.tzset()


async def settled(pilot) -> None:
    """Wait until the dashboard has everything the replay sent, diff included."""
    app = pilot.app
    for _ in range(400):
        table = app.query_one(ChangesTable)
        if (
            table.row_count == 2
            and app.cycle.status == "ok"
            and PENDING["improvement_id"] in app.details
        ):
            break
        await pilot.pause(0.02)
    else:
        raise AssertionError("the dashboard did not settle")
    # Where a short event log was scrolled to while lines came in before its size was known
    # depends on the machine's load: photographed at its end, the newest line is in every
    # picture.
    app.query_one("#events").scroll_end(animate=False, immediate=True)
    await pilot.pause(0.1)


def test_dashboard(snap_compare, replay):
    assert snap_compare(OverseerApp(replay.path), terminal_size=SIZE, run_before=settled)


def test_dashboard_at_80x24(snap_compare, replay):
    """The smallest usual terminal: the status line wraps instead of losing its end, the
    phases take three lines, the changes drop the columns the detail repeats, and the footer
    keeps `q Quit` in sight."""
    assert snap_compare(OverseerApp(replay.path), terminal_size=(80, 24), run_before=settled)


def test_approval_dialog(snap_compare, replay):
    async def approve(pilot) -> None:
        await settled(pilot)
        await pilot.press("a")
        for _ in range(250):  # until the dialog is up, however busy the machine
            if pilot.app.screen.__class__.__name__ == "DecisionScreen":
                break
            await pilot.pause(0.02)
        # The reason's cursor blinks: photographed steady, it is in every picture.
        pilot.app.screen.query_one("Input").cursor_blink = False
        await pilot.pause(0.3)

    assert snap_compare(OverseerApp(replay.path), terminal_size=SIZE, run_before=approve)


def test_history(snap_compare, replay):
    async def history(pilot) -> None:
        await settled(pilot)
        await pilot.press("h")
        for _ in range(200):
            if (
                pilot.app.screen.__class__.__name__ == "HistoryScreen"
                and pilot.app.screen.total_rows == 2
            ):
                break
            await pilot.pause(0.02)
        await pilot.pause(0.2)

    assert snap_compare(OverseerApp(replay.path), terminal_size=SIZE, run_before=history)


def test_stats_at_80x24(snap_compare, replay):
    """`s`: the stats of every target, the funnel of new tests per generator in columns."""

    async def stats(pilot) -> None:
        await settled(pilot)
        await pilot.press("s")
        for _ in range(250):
            screen = pilot.app.screen
            if screen.__class__.__name__ == "StatsScreen" and screen.stats is not None:
                break
            await pilot.pause(0.02)
        await pilot.pause(0.2)

    assert snap_compare(OverseerApp(replay.path), terminal_size=(80, 24), run_before=stats)


async def test_column_widths_are_set_with_the_rows_not_when_the_table_is_next_idle(tmp_path):
    """Why test_dashboard was flaky under load: DataTable measured its columns when it was
    next idle, and a frame drawn before that kept the widths of the previous refresh (the
    second row came out as "optimiz … medi … pkg/dicttoo"). The widths now come with the rows:
    drawn at once, before any idle, the new rows fit."""
    from support.tui import text_of

    app = OverseerApp(tmp_path / "no-daemon.sock", backoff=(60,))
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(ChangesTable)
        table.show([PENDING], [])
        await pilot.pause()  # idle: the one-row table's widths are measured
        table.show([PENDING], [PENDING, PROMOTED])
        shown = text_of(table)  # no await: nothing ran in between
        assert "optimization" in shown and "pkg/dicttoolz.py" in shown and "medium" in shown, shown
