"""Every target on the dashboard (issue 16) and what has worked (issue 17's funnel), on the real
app under Pilot: the target list, choosing one target (its changes, its cycle, its stats) and
coming back to all, several cycles at once, and the stats view through the daemon's `stats`."""

from __future__ import annotations

import re

import pytest
from rich.console import Console

from overseer.daemon.server import run_daemon
from overseer.tui.app import OverseerApp
from overseer.tui.legend import TARGET_COLUMN_MEANING, TARGET_STATES
from overseer.tui.messages import CycleStarted, EventLogged, PhaseProgressed, PhaseStarted
from overseer.tui.screens.stats import stats_view
from overseer.tui.widgets.changes import ChangesTable
from overseer.tui.widgets.phases import Phases
from overseer.tui.widgets.targets import ALL, COLUMNS, STATE_STYLE, TargetsTable
from support.helpers import Harness
from support.tui import SIZE, app_for, connected, text_of, until


def line_of(table: TargetsTable, name: str) -> str:
    return next(line for line in text_of(table).splitlines() if line.strip().startswith(name))


async def screen_named(pilot, name: str) -> None:
    await until(pilot, lambda: pilot.app.screen.__class__.__name__ == name, what=name)


@pytest.mark.usefixtures("warm_baseline")
async def test_the_target_list_chooses_a_target_and_comes_back_to_all(
    tmp_path, repo, sample, daemon_options
):
    """Two targets, one with a recorded (promoted) change: the list shows both with their last
    cycle, budget and health; `t` and enter choose one (its changes only, its stats) and
    come back to all; a pause reaches every row live."""
    recorded = Harness(tmp_path, repo, ruff_select=["F"])
    [kept] = recorded.cycle().attempts
    recorded.close()
    assert kept["status"] == "promoted", kept["failure_reason"]
    other = sample.copy(tmp_path / "other")
    targets = [
        {"name": "proj", "path": str(repo), "ruff_select": ["F"]},
        {"name": "other", "path": str(other), "ruff_select": ["F"]},
    ]
    async with run_daemon(daemon_options(targets=targets)) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            table, changes = app.query_one(TargetsTable), app.query_one(ChangesTable)
            title = app.query_one("#changes-title")
            await until(pilot, lambda: changes.row_count == 1, what="the recorded change")
            shown = text_of(table)
            assert "all targets" in shown and "last cycle" in shown and "health" in shown
            proj, second = line_of(table, "proj"), line_of(table, "other")
            assert "ok " in proj and "1/3 h · 1/10 d" in proj, proj  # the change it made
            assert "idle" in second and "✔" in second and "0/3 h · 0/10 d" in second, second
            assert second.split()[3] == "-", second  # its last cycle: none yet
            assert text_of(title).startswith(" Changes — "), text_of(title)  # every target

            await pilot.press("t")  # the first target alone
            await until(pilot, lambda: "Changes on proj" in text_of(title), what="proj alone")
            assert changes.row_count == 1
            assert changes.selected()["improvement_id"] == kept["improvement_id"]
            await pilot.press("t")  # the next: no change of its own
            await until(pilot, lambda: "Changes on other" in text_of(title), what="other alone")
            await until(pilot, lambda: changes.row_count == 0, what="other's changes (none)")
            assert table.highlighted() == "other"
            assert "No cycle on other seen here yet" in text_of(app.query_one(Phases))
            await pilot.press("h")  # its history too
            await screen_named(pilot, "HistoryScreen")
            heading = app.screen.query_one("#history-title")
            await until(
                pilot,
                lambda: "History of other — none of 0 attempts" in text_of(heading),
                what="other's history",
            )
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is app.screen_stack[0], what="the dashboard")
            await pilot.press("t")  # past the last: every target again
            await until(pilot, lambda: " on " not in text_of(title), what="all again")
            await until(pilot, lambda: changes.row_count == 1, what="every change again")

            # enter on a row of the list chooses it; on "all targets", every one
            table.focus()
            table.move_cursor(row=table.get_row_index("other"))
            await pilot.press("enter")
            await until(pilot, lambda: app.target_filter == "other", what="other chosen")
            table.move_cursor(row=table.get_row_index(ALL))
            await pilot.press("enter")
            await until(pilot, lambda: app.target_filter is None, what="all chosen")
            changes.focus()

            # stats of the target shown, through the daemon; t the next target
            await pilot.press("t")
            await until(pilot, lambda: app.target_filter == "proj")
            await pilot.press("s")
            await screen_named(pilot, "StatsScreen")
            stats = app.screen
            body, heading = stats.query_one("#stats-body"), stats.query_one("#stats-title")
            await until(pilot, lambda: stats.stats is not None, what="proj's stats")
            assert "target proj" in text_of(heading)
            assert stats.stats["target"] == "proj"
            [pattern] = stats.stats["patterns"]
            assert (pattern["attempts"], pattern["kept"]) == (1, 1)
            assert "quality" in text_of(body) and "New tests, per generator" in text_of(body)
            await pilot.press("t")
            await until(pilot, lambda: (stats.stats or {}).get("target") == "other")
            await until(pilot, lambda: "no real attempts yet" in text_of(body), what="other's")
            await pilot.press("t")
            await until(pilot, lambda: "every target" in text_of(heading), what="every target")
            await until(pilot, lambda: (stats.stats or {}).get("target") is None)
            assert stats.stats["patterns"] == [{**pattern}]
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is app.screen_stack[0], what="the dashboard")

            await pilot.press("p")  # the pause reaches every target's row, from the status
            await until(
                pilot,
                lambda: "paused" in line_of(table, "proj") and "paused" in line_of(table, "other"),
                what="every target paused",
            )
            await pilot.press("p")
            await until(pilot, lambda: "paused" not in line_of(table, "other"), what="resumed")


async def test_several_cycles_at_once_take_a_line_each(tmp_path):
    """Two targets' cycles running together (events as a daemon running them in parallel
    sends them): a line each with its phase, each target's row running in that phase; one
    target chosen shows its cycle whole. With one target, `t` says why it does nothing."""
    app = OverseerApp(tmp_path / "no-daemon.sock", backoff=(60,))
    two = {
        "state": "running",
        "targets": [
            {"name": "proj", "healthy": True, "state": "running"},
            {"name": "docs", "healthy": False, "reason": "/srv/docs does not exist"},
        ],
    }
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        app.apply_status(two)
        for target, cycle, phase in (("proj", "c1", "EVALUATE"), ("docs", "c2", "ANALYZE")):
            app.post_message(
                CycleStarted({"kind": "CycleStarted", "cycle_id": cycle, "target": target})
            )
            app.post_message(
                PhaseStarted({"kind": "PhaseStarted", "cycle_id": cycle, "phase": phase})
            )
        app.post_message(
            PhaseProgressed(
                {
                    "kind": "PhaseProgress",
                    "cycle_id": "c1",
                    "phase": "EVALUATE",
                    "message": "tests",
                    "done": 3,
                    "total": 6,
                }
            )
        )
        # Their phases' lines in the event log say whose they are.
        for cycle, summary in (("c2", "docs analysed"), ("c1", "proj analysed")):
            app.post_message(
                EventLogged(
                    {
                        "kind": "PhaseFinished",
                        "cycle_id": cycle,
                        "improvement_id": None,
                        "phase": "ANALYZE",
                        "duration": 0.5,
                        "outcome": "ok",
                        "summary": summary,
                        "at": "2026-11-30T10:00:00+00:00",
                    }
                )
            )
        events = app.query_one("#events")

        def logged() -> list[str]:  # all its lines, not only those in sight at 80×24
            return [strip.text for strip in events.lines]

        await until(pilot, lambda: any("proj analysed" in x for x in logged()), what="the lines")
        log = logged()
        assert any("docs · " in line and "docs analysed" in line for line in log), log
        assert any("proj · " in line and "proj analysed" in line for line in log), log
        phases, table = app.query_one(Phases), app.query_one(TargetsTable)
        await until(pilot, lambda: "2 cycles running" in text_of(phases), what="both cycles")
        await until(pilot, lambda: "tests 3/6" in text_of(phases), what="proj's progress")
        lines = text_of(phases).splitlines()
        assert any("proj" in line and "EVALUATE" in line for line in lines), lines
        assert any("docs" in line and "ANALYZE" in line for line in lines), lines
        assert "running" in line_of(table, "proj") and "EVALUATE" in line_of(table, "proj")
        # docs is unusable by the status's word (health ✘ with why), whatever the events say
        assert "unusable" in line_of(table, "docs") and "✘" in line_of(table, "docs")
        await pilot.press("t")
        await until(pilot, lambda: "on proj" in text_of(phases), what="proj's cycle whole")
        assert "2 cycles running" not in text_of(phases)
        assert "▶ EVALUATE" in text_of(phases).replace("  ", " ")

        app.apply_status({"state": "idle", "targets": [{"name": "proj", "healthy": True}]})
        assert app.target_filter == "proj"  # still there: kept
        await pilot.press("t")
        await until(
            pilot,
            lambda: any(
                "only one target is configured (proj)" in n.message for n in app._notifications
            ),
            what="why t does nothing",
        )


def test_the_stats_view_shows_the_funnel_per_generator():
    """The `stats` answer's funnel as the stats view draws it: each stage of each generator,
    in order, and what SAFETY denied."""
    funnel = {
        "llm": {
            "generated": 4,
            "collected": 3,
            "reliable": 2,
            "raised_coverage": 1,
            "approved": 1,
            "kept": 1,
            "denied": 1,
            "waiting": 0,
        }
    }
    stats = {
        "target": None,
        "patterns": [],
        "areas": [],
        "most_successful": [],
        "least_successful": [],
        "predictor": {"version": None, "note": "the prior"},
        "repair_rounds": {"llm": {"0": 1, "2": 1}},
        "new_tests": funnel,
    }
    console = Console(width=130, record=True)
    console.print(stats_view(stats))
    text = console.export_text()
    lines = [line.strip() for line in text.splitlines()]
    # the generators' header, then a stage a line, in order
    at = next(n for n, line in enumerate(lines) if line.split() == ["stage", "llm"])
    rows = [re.split(r"\s{2,}", line) for line in lines[at + 1 : at + 9]]
    assert rows == [
        ["generated", "4"],
        ["collected", "3"],
        ["passed reliably", "2"],
        ["raised coverage", "1"],
        ["approved", "1"],
        ["kept", "1"],
        ["denied by SAFETY", "1"],
        ["waiting for approval", "0"],
    ]
    assert "0 round(s): 1 · 2 round(s): 1" in text
    assert "no real attempts yet" in text


def test_the_legend_explains_every_target_column_and_state():
    assert set(TARGET_COLUMN_MEANING) == {label for _, label in COLUMNS}
    assert set(TARGET_STATES) == set(STATE_STYLE)
