"""What an on-call engineer needs from the dashboard (issue 15), on the real app under Pilot
against a real daemon: the selection follows a change that starts waiting, a key that does not
apply says why, decisions carry a reason, 80×24 works, `?` explains everything on screen, and
an answer that arrives while the dashboard is gone touches nothing."""

from __future__ import annotations

import asyncio
import inspect
import shutil

import pytest
from textual.widgets import Footer

from overseer.daemon.server import run_daemon
from overseer.tui import app as app_module
from overseer.tui.legend import COLUMN_MEANING, PHASE_MEANING, STATUS_MEANING, legend_text
from overseer.tui.model import PHASES
from overseer.tui.widgets.changes import COLUMNS, WAITING, ChangesTable
from overseer.tui.widgets.phases import Phases
from overseer.tui.widgets.status_bar import StatusBar
from overseer.vocabulary import AttemptStatus
from support.helpers import LIMITED, git, rows
from support.tui import SIZE, app_for, connected, text_of, until

SMALL = (80, 24)


def add_finding(repo, name: str) -> None:
    """Another file with an unused import: one more change for the next cycle to make."""
    (repo / "pkg" / name).write_text("import sys\n\n\ndef triple(x):\n    return x * 3\n")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", f"add {name}")


def waiting_ids(table: ChangesTable) -> set[str]:
    return {i for i, r in table.rows_by_id.items() if r["status"] in WAITING}


def notified(app, text: str) -> bool:
    return any(text in n.message for n in app._notifications)


async def next_waiting(pilot, before: set[str]) -> str:
    """Run a cycle; the id of the change that starts waiting, once the dashboard has dealt
    with its approval request (the selection has followed it, or not)."""
    app, table = pilot.app, pilot.app.query_one(ChangesTable)
    # The last cycle may still be closing (the daemon is "running" until it has): n waits.
    await until(pilot, lambda: app.check_action("run_now", ()) is True, what="n to apply")
    await pilot.press("n")
    await until(pilot, lambda: len(waiting_ids(table)) == len(before) + 1, what="a new waiting")
    [new] = waiting_ids(table) - before
    await until(
        pilot,
        lambda: notified(app, new[:8]) and app.follow is None,
        what="the approval request handled",
    )
    return new


async def test_the_selection_follows_a_change_that_starts_waiting_unless_just_moved(
    repo, daemon_options
):
    add_finding(repo, "other.py")
    add_finding(repo, "third.py")
    async with run_daemon(daemon_options()) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            table = app.query_one(ChangesTable)
            first = await next_waiting(pilot, set())
            assert table.selected_id() == first
            # The person has just moved the selection: a new waiting change leaves it alone.
            app.selection_hold = 3600
            await pilot.press("up")
            assert table.touched_at is not None
            second = await next_waiting(pilot, {first})
            assert table.selected_id() == first, (first, second)
            # Long enough ago (any time counts as long ago here): the selection follows.
            app.selection_hold = 0
            third = await next_waiting(pilot, {first, second})
            assert table.selected_id() == third
            detail = app.query_one("#detail-body")
            await until(
                pilot, lambda: third[:8] in text_of(detail).split("\n")[0], what="its detail"
            )
            assert daemon.rt.history.get(third)["status"] == "awaiting_approval"


@pytest.mark.usefixtures("warm_baseline")
async def test_a_key_that_does_not_apply_says_why(tmp_path, daemon_options):
    opts = daemon_options(policy=LIMITED, defaults={"require_approval": False})
    async with run_daemon(opts) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            await pilot.press("a")
            await until(pilot, lambda: notified(app, "a: nothing selected awaits approval"))
            assert notified(app, "no change awaits a decision now")
            assert app.screen is app.screen_stack[0]  # and nothing was opened
            await pilot.press("R")
            await until(pilot, lambda: notified(app, "R: nothing selected to roll back"))
            await pilot.press("n")
            table = app.query_one(ChangesTable)
            await until(pilot, lambda: (table.selected() or {}).get("status") == "promoted")
            promoted = table.selected_id()
            await pilot.press("r")
            await until(
                pilot,
                lambda: notified(
                    app, f"r: {promoted[:8]} is promoted, it does not await a decision"
                ),
            )
            await pilot.press("p")
            await until(pilot, lambda: app.status.get("state") == "paused")
            await pilot.press("n")
            await until(pilot, lambda: notified(app, "n: overseer is paused — p resumes it first"))
            assert rows(tmp_path / "state", "approvals") == []
            # What applies runs and says nothing of the kind: R opens its dialog.
            said = {n.message for n in app._notifications}
            await pilot.press("R")
            await until(pilot, lambda: app.screen.__class__.__name__ == "DecisionScreen")
            new = {n.message for n in app._notifications} - said
            assert not [m for m in new if m.startswith("R:")], new


@pytest.mark.usefixtures("warm_baseline")
async def test_approve_takes_an_optional_reason_and_rollback_one_too(tmp_path, daemon_options):
    async with run_daemon(daemon_options()) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            table = app.query_one(ChangesTable)
            iid = await next_waiting(pilot, set())
            await pilot.press("a")
            await until(pilot, lambda: app.screen.__class__.__name__ == "DecisionScreen")
            await pilot.press(*"reviewed the diff", "enter")
            await until(
                pilot, lambda: daemon.rt.history.get(iid)["status"] == "promoted", what="promotion"
            )
            [approval] = rows(tmp_path / "state", "approvals")
            assert (approval["decision"], approval["reason"]) == ("approved", "reviewed the diff")
            await until(pilot, lambda: (table.selected() or {}).get("status") == "promoted")
            await pilot.press("R")
            await until(pilot, lambda: app.screen.__class__.__name__ == "DecisionScreen")
            await pilot.press(*"broke staging", "enter")
            await until(
                pilot, lambda: daemon.rt.history.get(iid)["status"] == "rolled_back", what="revert"
            )
            decisions = rows(tmp_path / "state", "approvals")
            assert [(d["decision"], d["reason"]) for d in decisions] == [
                ("approved", "reviewed the diff"),
                ("rolled_back", "broke staging"),
            ]
            assert daemon.rt.history.get(iid)["rollback_reason"] == "broke staging"


@pytest.mark.usefixtures("warm_baseline")
async def test_approve_without_a_reason_sends_none(tmp_path, daemon_options):
    async with run_daemon(daemon_options()) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            iid = await next_waiting(pilot, set())
            await pilot.press("a")
            await until(pilot, lambda: app.screen.__class__.__name__ == "DecisionScreen")
            await pilot.press("enter")
            await until(pilot, lambda: daemon.rt.history.get(iid)["status"] == "promoted")
            [approval] = rows(tmp_path / "state", "approvals")
            assert approval["decision"] == "approved" and approval["reason"] is None


@pytest.mark.usefixtures("warm_baseline")
async def test_80x24_shows_the_whole_status_line_the_quit_key_and_uncovered_dialogs(
    daemon_options,
):
    async with run_daemon(daemon_options()) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SMALL, notifications=True) as pilot:
            await connected(pilot)
            await next_waiting(pilot, set())
            app.notify("shown before the dialog", timeout=600)
            await until(pilot, lambda: bool(app.screen.query("Toast")), what="a toast")
            bar = text_of(app.query_one(StatusBar))
            assert "SUPERVISED" in bar and "dry-run off" in bar and "this hour" in bar, bar
            assert "today" in bar, bar  # the end of the line, on its second line
            await pilot.pause(0.3)
            keys = {k.action: k for k in app.query_one(Footer).query("FooterKey")}
            assert {"approve", "reject", "quit", "help"} <= set(keys), keys
            for key in keys.values():  # each on screen, none cut off at the right edge
                assert key.region.width > 0 and key.region.right <= SMALL[0], key
            table = text_of(app.query_one(ChangesTable))
            assert "pkg/util.py" in table and "awaiting" in table, table
            assert (
                app.query_one(ChangesTable).virtual_size.width
                <= app.query_one(ChangesTable).size.width
            ), "the changes need no horizontal scrolling"
            # No toast covers a dialog: not one still current, nor one that comes while it is
            # up, which waits until it closes.
            await pilot.press("r")
            await until(pilot, lambda: app.screen.__class__.__name__ == "DecisionScreen")
            dialog = app.screen
            app.notify("something happened meanwhile")
            await pilot.pause(0.3)
            assert notified(app, "shown before the dialog")
            assert not dialog.query("Toast")
            assert [message for message, _ in app.held] == ["something happened meanwhile"]
            assert not notified(app, "something happened meanwhile")
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is app.screen_stack[0])
            await until(pilot, lambda: notified(app, "something happened meanwhile"))
            assert app.held == []
            await until(pilot, lambda: len(app.screen.query("Toast")) >= 2, what="both toasts")


async def test_the_legend_explains_every_column_status_and_phase(tmp_path):
    assert set(STATUS_MEANING) == {s.value for s in AttemptStatus}
    assert set(PHASE_MEANING) == set(PHASES)
    assert set(COLUMN_MEANING) == {label for _, label in COLUMNS}
    text = legend_text(100)
    for words in ("predicted success", "rate limits", "read-only", "SUPERVISED", "dry-run"):
        assert words in text, words
    app = app_module.OverseerApp(tmp_path / "no-daemon.sock", backoff=(60,))
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: app.screen.__class__.__name__ == "HelpScreen")
        shown = text_of(app.screen.query_one("#legend Static"))
        assert "Keys" in shown and "approve the selected waiting change" in shown
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.screen_stack[0])


@pytest.mark.usefixtures("warm_baseline")
async def test_answers_that_come_after_the_dashboard_went_touch_nothing(daemon_options):
    """The race of issue 15 (NoMatches('ChangesTable') under load), made to happen: every
    answer the dashboard waits for is held until its widgets are gone, then released."""
    async with run_daemon(daemon_options()) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            iid = await next_waiting(pilot, set())
            gate = asyncio.Event()
            client = app.client
            real = client.request
            asked: list[str] = []

            async def held(op, timeout=30.0, **args):
                asked.append(op)
                await gate.wait()
                return await real(op, timeout, **args)

            client.request = held
            app.details.clear()
            app.refresh_changes()
            app.load_detail(iid)
            await until(pilot, lambda: {"status", "show"} <= set(asked), what="requests sent")
            await app.query_one(ChangesTable).remove()
            assert app.dashboard() is None
            gate.set()
            await until(
                pilot,
                lambda: (
                    not [
                        w for w in app.workers if w.group in ("refresh", "detail") and w.is_running
                    ]
                ),
                what="the answers handled",
            )
            assert iid in app.details  # the answer came, and nothing was drawn with it
            assert "history" in asked  # the refresh went on past its first answer
            assert app.is_running and app.return_code is None


def test_the_app_reaches_dashboard_widgets_only_through_the_guard():
    """The class of that race: a handler that queries a dashboard widget directly would find
    none while the app closes. Only `dashboard()` queries, and it says when they are gone."""
    source = inspect.getsource(app_module)
    outside = source.replace(inspect.getsource(app_module.OverseerApp.dashboard), "")
    assert "query_one(" not in outside and ".query(" not in outside.replace(
        "self.screen_stack[0].query(Footer)", ""
    )


async def test_a_target_whose_tests_do_not_run_is_red_in_the_tui(daemon_options):
    async with run_daemon(daemon_options(target={"test_command": "no-such-command"})) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            await pilot.press("n")
            phases, bar = app.query_one(Phases), app.query_one(StatusBar)
            await until(pilot, lambda: "✘  ANALYZE" in text_of(phases), what="a red ANALYZE")
            assert "cannot be evaluated" in text_of(phases)
            await until(pilot, lambda: "✘ proj NOT EVALUABLE" in text_of(bar), what="the bar")
            assert "exit status 127" in text_of(bar)
            await until(pilot, lambda: notified(app, "no-such-command"), what="the alarm")
            assert any(
                n.title.startswith("proj cannot be evaluated") and n.severity == "error"
                for n in app._notifications
            )


async def test_a_target_that_becomes_unusable_is_shown_with_why(tmp_path, repo, daemon_options):
    async with run_daemon(daemon_options()) as daemon:
        app = app_for(daemon)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            bar = app.query_one(StatusBar)
            assert "UNUSABLE" not in text_of(bar)
            shutil.move(repo, tmp_path / "moved")  # the directory is gone
            await asyncio.gather(*await daemon.housekeeping())  # what it does every minute
            await until(pilot, lambda: "⚠ proj UNUSABLE" in text_of(bar), what="the bar")
            assert "does not exist" in text_of(bar)
            await until(pilot, lambda: notified(app, "cannot be used"), what="the alarm")
