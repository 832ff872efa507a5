"""`overseer tui`: the dashboard an on-call engineer attaches to the daemon.

One exclusive worker owns the connection: it connects (and reconnects, with back-off, when the
daemon restarts), subscribes, and turns each event into a message for the app. Decisions are
asked for in a modal first, then sent as requests on the same connection; a refusal from the
daemon (not an approver, nothing to approve) is shown as it was said, not as a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, RichLog, Static

from overseer.client import DaemonError, DaemonUnavailable
from overseer.tui import messages as m
from overseer.tui.model import CycleView, clock_time
from overseer.tui.screen_client import ScreenClient
from overseer.tui.screens.attempt import AttemptScreen
from overseer.tui.screens.history import HistoryScreen
from overseer.tui.screens.modals import ConfirmScreen, HelpScreen, ReasonScreen
from overseer.tui.widgets.changes import ROLLBACKABLE, WAITING, ChangesTable
from overseer.tui.widgets.detail import Detail
from overseer.tui.widgets.phases import Phases
from overseer.tui.widgets.status_bar import StatusBar
from overseer.vocabulary import event_from_dict

RECENT = 12
BACKOFF = (0.5, 1.0, 2.0, 5.0)


class OverseerApp(App[None]):
    CSS_PATH = Path(__file__).parent / "app.tcss"  # absolute, so subclasses elsewhere find it
    TITLE = "overseer"
    BINDINGS = [
        Binding("a", "approve", "Approve"),
        Binding("r", "reject", "Reject"),
        Binding("R", "rollback", "Rollback"),
        Binding("n", "run_now", "Run now"),
        Binding("p", "pause", "Pause"),
        Binding("p", "resume", "Resume"),
        Binding("h", "history", "History"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, socket_path: Path, *, backoff: tuple[float, ...] = BACKOFF) -> None:
        super().__init__()
        self.socket_path = socket_path
        self.backoff = backoff
        self.client: ScreenClient | None = None
        self.hello: dict[str, Any] = {}
        self.status: dict[str, Any] = {}
        self.recent: list[dict[str, Any]] = []
        self.cycle = CycleView()
        self.details: dict[str, dict[str, Any]] = {}
        self._refreshing = False

    # -- layout -----------------------------------------------------------------------------

    @property
    def dashboard_ready(self) -> bool:
        """The dashboard's widgets exist (not yet mounted, or already gone when closing)."""
        # All of them: while the app closes they go one by one, and a status that arrives
        # when the status bar is still there but the changes table is not would crash it.
        # (Checked and used in one step of the event loop, so none can go in between.)
        return (
            self.is_running
            and bool(self.screen_stack)
            and all(
                self.screen_stack[0].query(w) for w in (StatusBar, Phases, ChangesTable, Detail)
            )
        )

    def dash(self, selector: Any, expect_type: Any = None) -> Any:
        """A widget of the dashboard, which is the first screen whatever dialog is on top."""
        screen = self.screen_stack[0]
        return (
            screen.query_one(selector)
            if expect_type is None
            else screen.query_one(selector, expect_type)
        )

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield Phases(id="phases")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield Static("Changes", id="changes-title", classes="section")
                yield ChangesTable(id="changes")
                yield Static("Events", classes="section")
                yield RichLog(id="events", max_lines=2000, wrap=False, markup=False)
            yield Detail(id="detail")
        yield Footer()

    def on_mount(self) -> None:
        self.dash(Phases).show(self.cycle)
        self.dash(ChangesTable).focus()
        self.set_interval(1.0, self.dash(Phases).tick)
        self.follow()

    # -- the connection ---------------------------------------------------------------------

    @work(exclusive=True, group="daemon")
    async def follow(self) -> None:
        """Connect, subscribe, post one message per event; reconnect when the daemon goes."""
        attempt = 0
        while True:
            client = ScreenClient(self.socket_path, name="overseer-tui")
            try:
                hello = await client.connect()
                subscribed = await client.request("subscribe")
            except (DaemonUnavailable, DaemonError, OSError) as exc:
                await client.close()
                delay = self.backoff[min(attempt, len(self.backoff) - 1)]
                attempt += 1
                self.post_message(m.Disconnected(str(exc), delay))
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self.client = client
            self.post_message(m.Connected(hello, subscribed["status"]))
            async for event in client.events():
                for message in m.messages_for(event):
                    self.post_message(message)
            self.client = None
            await client.close()
            self.post_message(m.Disconnected("the daemon closed the connection", self.backoff[0]))
            await asyncio.sleep(self.backoff[0])

    def on_connected(self, message: m.Connected) -> None:
        self.hello = message.hello
        self.details.clear()
        if not self.dashboard_ready:
            return
        who = f"{message.hello.get('user')}{'' if message.hello.get('approver') else ', read-only'}"
        self.dash(StatusBar).show(connection="connected", detail=who)
        self.log_line(Text(f"connected as {who}", style="green"))
        self.apply_status(message.status)
        current = message.status.get("current")
        if current and current.get("cycle_id"):
            # Joined mid-cycle: show what is known until the next phase event fills it in.
            self.cycle = CycleView(
                cycle_id=current["cycle_id"],
                target=current.get("target", ""),
                started_at=current.get("since"),
                attempt=current.get("improvement_id"),
            )
            if current.get("phase"):
                self.cycle.apply(
                    {
                        "kind": "PhaseStarted",
                        "cycle_id": current["cycle_id"],
                        "improvement_id": current.get("improvement_id"),
                        "phase": current["phase"],
                    }
                )
            self.show_phases()
        self.refresh_changes()

    def on_disconnected(self, message: m.Disconnected) -> None:
        self.client = None
        if not self.dashboard_ready:
            return
        self.dash(StatusBar).show(
            connection="reconnecting",
            detail=f"{message.reason}; retrying in {message.retry_in:g} s",
        )
        self.refresh_bindings()

    # -- events -----------------------------------------------------------------------------

    def log_line(self, text: Text | str) -> None:
        if self.dashboard_ready:  # not while the app closes (its widgets are going)
            self.dash("#events", RichLog).write(text)

    def on_event_logged(self, message: m.EventLogged) -> None:
        e = message.event
        event = event_from_dict(e)
        line = event.describe() if event is not None else None
        if line is None:
            return
        stamp = clock_time(e.get("at"))
        self.log_line(Text(f"{stamp} ") + Text(line.strip()))

    def on_cycle_started(self, message: m.CycleStarted) -> None:
        self.cycle = CycleView.started(message.event)
        self.show_phases()
        self.refresh_changes()  # the daemon's state is "running" now

    def show_phases(self) -> None:
        if self.dashboard_ready:
            self.dash(Phases).show(self.cycle)

    def _phase_event(self, message: m.DaemonEvent) -> None:
        if self.cycle.apply(message.event):
            self.show_phases()

    on_phase_started = _phase_event
    on_phase_progressed = _phase_event
    on_phase_finished = _phase_event

    def on_cycle_finished(self, message: m.CycleFinished) -> None:
        self._phase_event(message)
        self.refresh_changes()

    def on_approval_requested(self, message: m.ApprovalRequested) -> None:
        e = message.event
        self.notify(
            f"{e['improvement_id'][:8]}: {e.get('change_type')} in {e.get('target_file')} ({e.get('risk_level')} risk)",
            title="A change awaits your approval",
            severity="warning",
            timeout=10,
        )
        self.bell()
        self.refresh_changes()

    def on_changes_changed(self, message: m.ChangesChanged) -> None:
        self.details.pop(message.event.get("improvement_id", ""), None)
        self.refresh_changes()

    def on_daemon_changed(self, message: m.DaemonChanged) -> None:
        if message.event["kind"] == "ReloadFailed":
            self.notify(
                "\n".join(message.event.get("problems", [])),
                title="Configuration rejected; the last good one stays",
                severity="error",
                timeout=15,
            )
        self.refresh_changes()

    # -- the change list and its detail -----------------------------------------------------

    @work(exclusive=True, group="refresh")
    async def refresh_changes(self) -> None:
        """Status and recent history from the daemon (after anything that changes them)."""
        client = self.client
        if client is None:
            return
        try:
            status = await client.request("status")
            history = await client.request("history", limit=RECENT)
        except (DaemonError, DaemonUnavailable):
            return
        self.recent = history["attempts"]
        self.apply_status(status)

    def apply_status(self, status: dict[str, Any]) -> None:
        if not self.dashboard_ready:
            return  # an answer that arrived while the app was closing
        self.status = status
        self.dash(StatusBar).show(status=status)
        table = self.dash(ChangesTable)
        table.show(status.get("pending_approvals") or [], self.recent)
        waiting = table.waiting_count
        self.dash("#changes-title", Static).update(
            f"Changes — {waiting} awaiting a decision"
            if waiting
            else "Changes — none awaiting a decision"
        )
        self.show_detail()
        self.refresh_bindings()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "changes":
            self.show_detail()
            self.refresh_bindings()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "changes" and event.row_key.value:
            self.open_attempt(event.row_key.value)

    def show_detail(self) -> None:
        row = self.dash(ChangesTable).selected()
        detail = self.dash(Detail)
        if row is None:
            detail.show(None)
            return
        full = self.details.get(row["improvement_id"])
        detail.show({**row, **full} if full else row)
        if full is None:
            self.load_detail(row["improvement_id"])

    @work(group="detail")
    async def load_detail(self, improvement_id: str) -> None:
        client = self.client
        if client is None:
            return
        with contextlib.suppress(DaemonError, DaemonUnavailable):
            self.details[improvement_id] = await client.request("show", id=improvement_id)
            # The app may be closing by the time the answer comes: its widgets are going.
            if not self.dashboard_ready:
                return
            if self.dash(ChangesTable).selected_id() == improvement_id:
                self.show_detail()

    @work(group="detail")
    async def open_attempt(self, improvement_id: str) -> None:
        client = self.client
        if client is None:
            self.notify("Not connected to the daemon.", severity="error")
            return
        try:
            data = await client.request("show", id=improvement_id)
        except DaemonError as exc:
            self.notify(exc.message, title=exc.title, severity="error")
            return
        await self.push_screen(AttemptScreen(data))

    # -- what the keys may do now -----------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        connected = self.client is not None
        paused = self.status.get("state") == "paused"
        if action == "pause":
            return not paused  # hidden while paused: `p` resumes then
        if action == "resume":
            return paused
        if not self.dashboard_ready:
            return None  # starting or closing: Textual asks while the screens come and go
        on_dashboard = self.screen is self.screen_stack[0]
        if action in ("approve", "reject", "rollback", "run_now", "history") and not on_dashboard:
            return False  # other screens have keys of their own
        if action in ("approve", "reject", "rollback", "run_now"):
            if not connected:
                return None
            row = self.dash(ChangesTable).selected()
            if action in ("approve", "reject"):
                return True if row and row["status"] in WAITING else None
            if action == "rollback":
                return True if row and row["status"] in ROLLBACKABLE else None
            return None if paused or self.status.get("state") == "running" else True
        return True

    # -- decisions --------------------------------------------------------------------------

    async def request(self, op: str, **args: Any) -> dict[str, Any] | None:
        """Send one decision; show the daemon's answer or refusal. None when it failed."""
        client = self.client
        if client is None:
            self.notify("Not connected to the daemon; nothing was sent.", severity="error")
            return None
        try:
            return await client.request(op, timeout=120, **args)
        except DaemonError as exc:
            self.notify(
                exc.message, title=f"{exc.title} — nothing was done", severity="error", timeout=15
            )
        except DaemonUnavailable as exc:
            self.notify(str(exc), title="Lost the daemon; nothing was done", severity="error")
        return None

    def report(self, result: dict[str, Any] | None, done: str) -> None:
        if result is None:
            return
        if result.get("queued"):
            self.notify(result["message"], title="Queued")
        else:
            status = result.get("status", "")
            why = (
                result.get("failure_reason") if status not in ("promoted", "rolled_back") else None
            )
            self.notify(
                f"{done}: {status.replace('_', ' ')}" + (f" — {why}" if why else ""), timeout=8
            )
        self.refresh_changes()

    @work(group="decision")
    async def action_approve(self) -> None:
        row = self.dash(ChangesTable).selected()
        if not row or row["status"] not in WAITING:
            return
        body = (
            f"Promote {row['improvement_id'][:8]} — {row.get('change_type')} in {row.get('target_file')} "
            f"(risk {row.get('risk_level')}) — to its target branch?"
        )
        if await self.push_screen_wait(ConfirmScreen("Approve this change?", body, "Approve")):
            result = await self.request("approve", id=row["improvement_id"])
            self.report(result, f"{row['improvement_id'][:8]} approved")

    @work(group="decision")
    async def action_reject(self) -> None:
        row = self.dash(ChangesTable).selected()
        if not row or row["status"] not in WAITING:
            return
        body = f"Reject {row['improvement_id'][:8]} — {row.get('change_type')} in {row.get('target_file')}. Why?"
        reason = await self.push_screen_wait(ReasonScreen("Reject this change", body))
        if reason:
            result = await self.request("reject", id=row["improvement_id"], reason=reason)
            self.report(result, f"{row['improvement_id'][:8]} rejected")

    @work(group="decision")
    async def action_rollback(self) -> None:
        row = self.dash(ChangesTable).selected()
        if row:
            await self.roll_back(row)

    async def roll_back(self, row: dict[str, Any]) -> bool:
        """Confirm, naming the commit, then ask the daemon to revert it (from a worker: the
        dashboard's `R` and the history screen's). True when it was asked."""
        if row["status"] not in ROLLBACKABLE:
            return False
        commit = (row.get("git_commit_hash") or "")[:7]
        body = (
            f"Revert commit {commit} ({row.get('summary') or row.get('target_file')}) with a new "
            f"commit on the target branch. Nothing is rewritten."
        )
        if not await self.push_screen_wait(
            ConfirmScreen(f"Roll back {commit}?", body, "Roll back")
        ):
            return False
        result = await self.request(
            "rollback", id=row["improvement_id"], reason="rolled back from the TUI"
        )
        self.report(result, f"{row['improvement_id'][:8]} rolled back")
        return True

    @work(group="decision")
    async def action_run_now(self) -> None:
        result = await self.request("run_now")
        if result:
            self.notify(f"Cycle started on {', '.join(result['targets'])}.")

    @work(group="decision")
    async def action_pause(self) -> None:
        if await self.request("pause", reason="paused from the TUI") is not None:
            self.notify("Paused: no cycle starts and nothing is promoted.", severity="warning")
            self.refresh_changes()

    @work(group="decision")
    async def action_resume(self) -> None:
        if await self.request("resume") is not None:
            self.notify("Resumed.")
            self.refresh_changes()

    def action_history(self) -> None:
        self.push_screen(HistoryScreen())

    def action_help(self) -> None:
        self.push_screen(HelpScreen())


def run(socket_path: Path) -> None:
    OverseerApp(socket_path).run()
