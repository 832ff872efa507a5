"""The real Textual app under Pilot, against a real daemon (in this process) on a real repo."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from overseer.client import Client
from overseer.daemon.server import run_daemon
from overseer.tui.app import OverseerApp
from overseer.tui.widgets.changes import ChangesTable
from overseer.tui.widgets.phases import Phases
from overseer.tui.widgets.status_bar import StatusBar
from support.helpers import LIMITED, git, next_event, rows
from support.hostile import REASON, assert_harmless, hostile_repo
from support.tui import SIZE, app_for, connected, text_of, until


async def a_change_waiting(pilot) -> str:
    await pilot.press("n")
    table = pilot.app.query_one(ChangesTable)
    await until(pilot, lambda: table.waiting_count == 1, what="a change awaiting approval")
    await pilot.pause(0.2)
    return table.selected_id()


async def a_promoted_change(pilot) -> dict:
    """Run a cycle under a policy that promotes it; the dashboard's row of that change."""
    await pilot.press("n")
    table = pilot.app.query_one(ChangesTable)
    await until(
        pilot,
        lambda: (table.selected() or {}).get("status") == "promoted",
        what="a promoted change",
    )
    return table.selected()


async def test_the_phases_advance_on_screen_during_a_cycle(daemon_options):
    async with run_daemon(daemon_options()) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            phases = app.query_one(Phases)
            assert "No cycle yet" in text_of(phases)
            seen_running: set[str] = set()
            show = phases.show

            def showing(cycle, now=None):  # every state drawn, not only those sampled below
                seen_running.update(n for n, p in cycle.phases.items() if p.state == "running")
                show(cycle, now)

            phases.show = showing
            await pilot.press("n")
            finished = False
            deadline = time.monotonic() + 60
            while not finished and time.monotonic() < deadline:
                shown = text_of(phases)
                seen_running.update(re.findall(r"▶\s+([A-Z]+)", shown))
                finished = "✔  RECORD" in shown
                await pilot.pause(0.02)
            shown = text_of(phases)
            for name in ("ANALYZE", "GENERATE", "SAFETY", "DEPLOY", "EVALUATE"):
                assert f"✔  {name}" in shown, shown
            assert "–  LEARN" in shown and "outcome pending" in shown, shown
            assert {"ANALYZE", "EVALUATE"} <= seen_running, seen_running  # seen while they ran
            events = text_of(app.query_one("#events"))
            assert "awaiting approval" in events, events
            # The target names no branch: the title shows the one checked out, not "proj@".
            assert "on proj@main" in shown, shown


@pytest.mark.usefixtures("warm_baseline")
async def test_approve_with_a_promotes_the_change(tmp_path, repo, daemon_options):
    async with run_daemon(daemon_options()) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            iid = await a_change_waiting(pilot)
            detail = app.query_one("#detail-body")
            # The detail loads, then is laid out to its full height: wait, on a busy machine.
            await until(
                pilot,
                lambda: (
                    "Why this risk and gate" in text_of(detail)
                    and "-import json" in text_of(detail)
                ),
                what="the change's detail with its diff and why",
            )
            await pilot.press("a")
            await until(
                pilot,
                lambda: app.screen.__class__.__name__ == "DecisionScreen",
                what="the confirmation",
            )
            await pilot.press("enter")
            await until(
                pilot, lambda: daemon.rt.history.get(iid)["status"] == "promoted", what="promotion"
            )
            assert git(repo, "rev-parse", "main") == daemon.rt.history.get(iid)["git_commit_hash"]
            [approval] = rows(tmp_path / "state", "approvals")
            assert approval["decision"] == "approved"


@pytest.mark.usefixtures("warm_baseline")
async def test_escape_cancels_and_nothing_is_sent(tmp_path, daemon_options):
    async with run_daemon(daemon_options()) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            iid = await a_change_waiting(pilot)
            await pilot.press("a")
            await until(pilot, lambda: app.screen.__class__.__name__ == "DecisionScreen")
            await pilot.press("escape")
            await pilot.pause(0.5)
            assert daemon.rt.history.get(iid)["status"] == "awaiting_approval"
            assert rows(tmp_path / "state", "approvals") == []


@pytest.mark.usefixtures("warm_baseline")
async def test_reject_with_r_asks_why_and_records_it(tmp_path, repo, daemon_options):
    async with run_daemon(daemon_options()) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            iid = await a_change_waiting(pilot)
            await pilot.press("r")
            await until(pilot, lambda: app.screen.__class__.__name__ == "DecisionScreen")
            await pilot.press("enter")  # no reason: refused by the dialog itself
            await pilot.pause(0.2)
            assert app.screen.__class__.__name__ == "DecisionScreen"
            await pilot.press(*"keep json for plugins", "enter")
            await until(
                pilot, lambda: daemon.rt.history.get(iid)["status"] == "rejected", what="rejection"
            )
            [decision] = rows(tmp_path / "state", "approvals")
            assert (
                decision["decision"] == "rejected" and decision["reason"] == "keep json for plugins"
            )
            assert git(repo, "branch", "--list", "overseer/*") == ""


@pytest.mark.usefixtures("warm_baseline")
async def test_rollback_with_capital_r_names_the_commit_and_reverts(repo, daemon_options):
    opts = daemon_options(policy=LIMITED, defaults={"require_approval": False})
    async with run_daemon(opts) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            row = await a_promoted_change(pilot)
            await pilot.press("R")
            await until(pilot, lambda: app.screen.__class__.__name__ == "DecisionScreen")
            assert row["git_commit_hash"][:7] in text_of(app.screen.query_one(".dialog-title"))
            await pilot.press("enter")
            await until(
                pilot,
                lambda: daemon.rt.history.get(row["improvement_id"])["status"] == "rolled_back",
            )
            assert git(repo, "log", "-1", "--format=%s").startswith(
                'Revert "Autonomous improvement'
            )


@pytest.mark.usefixtures("warm_baseline")
async def test_rollback_from_the_history_screen(repo, daemon_options):
    """Any deployed change can be rolled back, not only those the dashboard lists."""
    opts = daemon_options(policy=LIMITED, defaults={"require_approval": False})
    async with run_daemon(opts) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            iid = (await a_promoted_change(pilot))["improvement_id"]
            await pilot.press("h")
            await until(pilot, lambda: app.screen.__class__.__name__ == "HistoryScreen")
            screen = app.screen
            await until(pilot, lambda: (screen.selected() or {}).get("improvement_id") == iid)
            assert screen.check_action("rollback", ()) is True
            await pilot.press("R")
            await until(pilot, lambda: app.screen.__class__.__name__ == "DecisionScreen")
            await pilot.press("enter")
            await until(
                pilot, lambda: daemon.rt.history.get(iid)["status"] == "rolled_back", what="revert"
            )
            assert git(repo, "log", "-1", "--format=%s").startswith('Revert "Autonomous')
            await until(pilot, lambda: (screen.selected() or {}).get("status") == "rolled_back")
            assert screen.check_action("rollback", ()) is None  # nothing left to roll back


@pytest.mark.usefixtures("warm_baseline")
async def test_keys_that_do_not_apply_are_disabled(daemon_options):
    async with run_daemon(daemon_options()) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            # Nothing selected: approve, reject and rollback do not apply.
            assert app.check_action("approve", ()) is None
            assert app.check_action("rollback", ()) is None
            await pilot.press("a")
            await pilot.pause(0.2)
            assert app.screen is app.screen_stack[0]  # no dialog opened
            await a_change_waiting(pilot)
            assert app.check_action("approve", ()) is True
            assert app.check_action("rollback", ()) is None  # not promoted


@pytest.mark.usefixtures("warm_baseline")
async def test_pause_with_p_shows_and_is_obeyed(tmp_path, daemon_options):
    async with run_daemon(daemon_options(every=1)) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            await until(pilot, lambda: app.status.get("state") in ("running", "idle"))
            await until(
                pilot,
                lambda: app.cycle.cycle_id is not None and not app.cycle.running,
                what="first cycle",
            )
            await pilot.press("p")
            bar = app.query_one(StatusBar)
            await until(pilot, lambda: "⏸ PAUSED since" in text_of(bar), what="paused on screen")
            assert "paused from the TUI" in text_of(bar)  # the reason is shown
            assert daemon.rt.history.get_control("paused")["reason"] == "paused from the TUI"
            cycles = len(rows(tmp_path / "state", "cycles"))
            await asyncio.sleep(2.5)  # the schedule fires every second, and is skipped
            assert len(rows(tmp_path / "state", "cycles")) == cycles
            assert app.check_action("run_now", ()) is None
            await pilot.press("p")  # p resumes while paused
            await until(pilot, lambda: "PAUSED" not in text_of(bar), what="resumed on screen")
            assert daemon.rt.history.get_control("paused") is None


@pytest.mark.usefixtures("warm_baseline")
async def test_disconnect_and_reconnect(daemon_options):
    opts = daemon_options()
    async with run_daemon(opts) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            bar = app.query_one(StatusBar)
            assert "● connected" in text_of(bar)
            daemon.should_exit.set()  # the daemon goes away under the app
            await until(pilot, lambda: "reconnecting" in text_of(bar), what="reconnecting shown")
            assert app.check_action("approve", ()) is None
            # Its successor starts once it has let go of the state directory (its clients are
            # gone before its lanes and notifications are closed).
            await until(pilot, lambda: daemon.instance is None, what="the first daemon gone")
            async with run_daemon(opts):
                await until(pilot, lambda: "● connected" in text_of(bar), what="connected again")
                events = text_of(app.query_one("#events"))
                assert events.count("connected as") == 2


@pytest.mark.usefixtures("warm_baseline")
async def test_a_refusal_is_explained_not_a_crash(tmp_path, daemon_options):
    opts = daemon_options(approvers={"include_owner": False, "groups": []})
    async with run_daemon(opts) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            assert "read-only" in text_of(app.query_one(StatusBar))
            await pilot.press("n")
            await until(
                pilot,
                lambda: any("is not an approver" in n.message for n in app._notifications),
                what="the refusal",
            )
            assert rows(tmp_path / "state", "cycles") == []
            assert app.is_running


@pytest.mark.usefixtures("warm_baseline")
async def test_history_screen_pages_filters_and_opens_an_attempt(daemon_options):
    opts = daemon_options(policy=LIMITED, defaults={"require_approval": False})
    async with run_daemon(opts) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            await pilot.press("n")
            await until(pilot, lambda: app.query_one(ChangesTable).row_count == 1, what="a change")
            await pilot.press("h")
            await until(pilot, lambda: app.screen.__class__.__name__ == "HistoryScreen")
            title = app.screen.query_one("#history-title")
            await until(pilot, lambda: "1–1 of 1 attempts" in text_of(title), what="the first page")
            await pilot.press("slash", *"nomatch", "enter")
            await until(
                pilot,
                lambda: "none of 0 attempts matching “nomatch”" in text_of(title),
                what="filtered",
            )
            await pilot.press("slash", "ctrl+u", *"F401", "enter")
            await until(pilot, lambda: "1–1 of 1 attempts" in text_of(title), what="filtered back")
            await pilot.press("enter")
            await until(
                pilot, lambda: app.screen.__class__.__name__ == "AttemptScreen", what="the attempt"
            )
            shown = text_of(app.screen.query_one("#attempt Static"))
            assert "Attempt " in shown and "(promoted)" in shown and "Phase timings" in shown


def test_progress_messages_for_one_phase_replace_each_other():
    from overseer.tui.messages import PhaseProgressed, PhaseStarted

    def progress(phase: str, done: int) -> PhaseProgressed:
        return PhaseProgressed(
            {
                "kind": "PhaseProgress",
                "cycle_id": "c",
                "improvement_id": "i",
                "phase": phase,
                "done": done,
            }
        )

    assert progress("EVALUATE", 2).can_replace(progress("EVALUATE", 1))
    assert not progress("EVALUATE", 2).can_replace(progress("ANALYZE", 1))
    assert not progress("EVALUATE", 2).can_replace(
        PhaseStarted({"kind": "PhaseStarted", "cycle_id": "c"})
    )


def test_the_detail_of_a_feature_shows_the_test_it_is_for():
    """The `show` answer's `feature` line (application.show), as the detail pane draws it."""
    from rich.console import Console

    from overseer.tui.widgets.detail import describe

    row = {"improvement_id": "ab" * 16, "status": "awaiting_approval", "change_type": "feature"}
    line = "tests.test_ops::test_divide: xfail before (divide is missing), passed now"
    console = Console(width=200, record=True)
    console.print(describe({**row, "feature": {"text": line}}))
    assert f"Feature test: {line}" in console.export_text()
    console.print(describe(row))
    assert console.export_text().count("Feature test:") == 0  # export_text clears


async def test_a_burst_of_progress_is_merged_and_the_newest_count_shown(tmp_path):
    from overseer.tui.messages import CycleStarted, PhaseProgressed, PhaseStarted

    class Counting(OverseerApp):
        handled = 0

        def on_phase_progressed(self, message):
            Counting.handled += 1
            super().on_phase_progressed(message)

    app = Counting(tmp_path / "no-daemon.sock", backoff=(60,))
    async with app.run_test(size=SIZE) as pilot:
        app.post_message(
            CycleStarted(
                {
                    "kind": "CycleStarted",
                    "cycle_id": "c",
                    "target": "t",
                    "branch": "main",
                    "at": None,
                }
            )
        )
        app.post_message(
            PhaseStarted(
                {
                    "kind": "PhaseStarted",
                    "cycle_id": "c",
                    "improvement_id": "i",
                    "phase": "EVALUATE",
                }
            )
        )
        for done in range(1, 501):  # far faster than the screen can draw
            app.post_message(
                PhaseProgressed(
                    {
                        "kind": "PhaseProgress",
                        "cycle_id": "c",
                        "improvement_id": "i",
                        "phase": "EVALUATE",
                        "message": "tests",
                        "done": done,
                        "total": 500,
                    }
                )
            )
        await pilot.pause(0.5)
        assert Counting.handled < 500
        assert "tests 500/500" in text_of(app.query_one(Phases))


async def test_a_hostile_file_name_and_reason_are_shown_not_acted_on(tmp_path, daemon_options):
    """The detail, its diff, the event log, the list and the attempt's screen show what a file
    name and a reason hold (support.hostile) as text, not as escapes a terminal acts on."""
    repo = hostile_repo(tmp_path / "hostile")
    async with run_daemon(daemon_options(target={"path": str(repo)})) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            iid = await a_change_waiting(pilot)
            detail = app.query_one("#detail-body")
            await until(pilot, lambda: "-import os" in text_of(detail), what="the diff")
            assert_harmless(text_of(detail))  # the name, in the head and in the diff
            assert_harmless(text_of(app.query_one(ChangesTable)), shows="\\x07.py")
            async with Client(daemon.socket_path) as client:  # another front door decides
                await client.request("subscribe")
                await client.request("reject", id=iid, reason=REASON)
                await next_event(client, "ChangeRejected")
            events = app.query_one("#events")

            def logged() -> str:  # every line the log rendered, wider than the screen too
                return "\n".join(strip.text for strip in events.lines)

            await until(pilot, lambda: "rejected by" in logged(), what="the rejection")
            assert_harmless(logged(), shows="\\x1b[2J")  # the reason, shown
            await pilot.press("h")
            await until(pilot, lambda: app.screen.__class__.__name__ == "HistoryScreen")
            await until(
                pilot, lambda: "1–1 of 1" in text_of(app.screen.query_one("#history-title"))
            )
            await pilot.press("enter")
            await until(pilot, lambda: app.screen.__class__.__name__ == "AttemptScreen")
            shown = text_of(app.screen.query_one("#attempt Static"))
            assert_harmless(shown)
            assert "\\x1b[2J" in shown and "\\u202e" in shown  # the recorded reason
