"""`overseer tui`: the dashboard an on-call engineer attaches to the daemon.

One exclusive worker owns the connection: it connects (and reconnects, with back-off, when the
daemon restarts), subscribes, and turns each event into a message for the app. Decisions are
asked for in a modal first, then sent as requests on the same connection; a refusal from the
daemon (not an approver, nothing to approve) is shown as it was said, not as a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, RichLog, Static

from overseer.client import DaemonError, DaemonUnavailable
from overseer.tui import messages as m
from overseer.tui.model import CycleView, clock_time
from overseer.tui.screen_client import ScreenClient
from overseer.tui.screens.attempt import AttemptScreen
from overseer.tui.screens.history import HistoryScreen
from overseer.tui.screens.modals import DecisionScreen, HelpScreen
from overseer.tui.screens.stats import StatsScreen
from overseer.tui.widgets.changes import ROLLBACKABLE, WAITING, ChangesTable
from overseer.tui.widgets.detail import Detail
from overseer.tui.widgets.footer import Footer
from overseer.tui.widgets.phases import Phases
from overseer.tui.widgets.status_bar import StatusBar
from overseer.tui.widgets.targets import (
    ALL,
    MOST_ROWS,
    MOST_ROWS_SHORT,
    TargetsTable,
    next_target,
)
from overseer.vocabulary import event_from_dict

RECENT = 12
BACKOFF = (0.5, 1.0, 2.0, 5.0)
# After the person moves the selection, a change that starts waiting does not take it away
# for this long.
SELECTION_HOLD = 5.0
# Below these sizes the footer is compact and the phases take three lines instead of eight.
NARROW = 110
SHORT = 34
# The dashboard's keys: key, action, label in the footer, and whether pressing it when it does
# not apply says why (`why_not`). `p` is pause or resume, whichever applies.
KEYS = (
    ("a", "approve", "Approve", True),
    ("r", "reject", "Reject", True),
    ("R", "rollback", "Rollback", True),
    ("n", "run_now", "Run now", True),
    ("p", "pause", "Pause", False),
    ("p", "resume", "Resume", False),
    ("h", "history", "History", False),
    ("t", "next_target", "Target", True),
    ("s", "stats", "Stats", True),
    ("question_mark", "help", "Help", False),
    ("q", "quit", "Quit", False),
)
# The keys that say why when they do not apply, and their actions.
EXPLAINED = {key: action for key, action, _, explained in KEYS if explained}
# Keys the compact footer leaves out (the legend has them), so that `q Quit` stays in sight.
ROOMY_ONLY = frozenset({"next_target", "stats"})


def _not_for(
    row: dict[str, Any] | None, statuses: tuple[str, ...], wanted: str, not_this: str, hint: str
) -> str | None:
    """Why a key does not apply to the selected change, or None if its status is one of
    `statuses`: `nothing selected {wanted}`, or the change, its status and `not_this`; then
    what to do (`hint`)."""
    if row is None:
        return f"nothing selected {wanted} — {hint}"
    if row["status"] in statuses:
        return None
    status = row["status"].replace("_", " ")
    return f"{row['improvement_id'][:8]} is {status}{not_this} — {hint}"


@dataclass(frozen=True)
class Dashboard:
    """The dashboard's widgets. Only `OverseerApp.dashboard()` makes one, and it makes none
    while they are not all there (before they are mounted, while the app closes): code that
    comes back from an await asks for it again instead of holding on to widgets."""

    status: StatusBar
    phases: Phases
    targets: TargetsTable
    changes: ChangesTable
    changes_title: Static
    events: RichLog
    detail: Detail


class OverseerApp(App[None]):
    CSS_PATH = Path(__file__).parent / "app.tcss"  # absolute, so subclasses elsewhere find it
    TITLE = "overseer"
    BINDINGS = [Binding(key, action, label) for key, action, label, _ in KEYS]

    def __init__(self, socket_path: Path, *, backoff: tuple[float, ...] = BACKOFF) -> None:
        super().__init__()
        self.socket_path = socket_path
        self.backoff = backoff
        self.client: ScreenClient | None = None
        self.hello: dict[str, Any] = {}
        self.status: dict[str, Any] = {}
        self.recent: list[dict[str, Any]] = []
        # Each target's latest cycle, in the order they started (the newest last).
        self.cycles: dict[str, CycleView] = {}
        # The target the dashboard shows alone (its changes, its cycle); None: all of them.
        self.target_filter: str | None = None
        self.details: dict[str, dict[str, Any]] = {}
        self.selection_hold = SELECTION_HOLD
        self.follow: str | None = None  # a change that started waiting, to be selected
        self.held: list[tuple[str, dict[str, Any]]] = []  # notifications while a dialog is up

    @property
    def cycle(self) -> CycleView:
        """The cycle the dashboard shows first: the chosen target's latest; else the newest
        running one; else the newest (an empty one before any)."""
        if self.target_filter is not None:
            return self.cycles.get(self.target_filter) or CycleView(target=self.target_filter)
        views = list(self.cycles.values())
        running = [c for c in views if c.running]
        return (running or views or [CycleView()])[-1]

    # -- layout -----------------------------------------------------------------------------

    def dashboard(self) -> Dashboard | None:
        """The dashboard's widgets, or None while they are not all there.

        All of them: while the app closes they go one by one, and a status that arrives when
        the status bar is still there but the changes table is not would crash it. The
        dashboard is the first screen, whatever dialog or screen is on top. (Checked and used
        in one step of the event loop, so none can go in between; after an await, ask again.)
        """
        if not self.is_running or not self.screen_stack:
            return None
        screen = self.screen_stack[0]
        found: list[Any] = []
        for selector in (
            StatusBar,
            Phases,
            TargetsTable,
            ChangesTable,
            "#changes-title",
            "#events",
            Detail,
        ):
            results = screen.query(selector)
            if not results:
                return None
            found.append(results.first())
        return Dashboard(*found)

    @property
    def dashboard_ready(self) -> bool:
        return self.dashboard() is not None

    @property
    def on_dashboard(self) -> bool:
        return bool(self.screen_stack) and self.screen is self.screen_stack[0]

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield Phases(id="phases")
        yield TargetsTable(id="targets")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield Static("Changes", id="changes-title", classes="section")
                yield ChangesTable(id="changes")
                yield Static("Events", classes="section")
                yield RichLog(id="events", max_lines=2000, wrap=False, markup=False)
            yield Detail(id="detail")
        yield Footer(roomy_only=ROOMY_ONLY)

    def on_mount(self) -> None:
        d = self.dashboard()
        assert d is not None  # composed above
        d.phases.show(CycleView())
        d.changes.focus()
        self.set_interval(1.0, d.phases.tick)
        self.screen_change_signal.subscribe(self, self.on_screen_changed)
        self.fit(self.size.width, self.size.height)
        self.follow_daemon()

    def on_resize(self, event: events.Resize) -> None:
        self.fit(event.size.width, event.size.height)

    def fit(self, width: int, height: int) -> None:
        """Narrow: a compact footer without the command palette's key (ctrl+p still works),
        so `q Quit` stays in sight. Short: the phases on three lines, and fewer targets
        in sight (the list scrolls)."""
        for footer in self.screen_stack[0].query(Footer) if self.screen_stack else []:
            footer.compact = width < NARROW
            footer.show_command_palette = width >= NARROW
        if (d := self.dashboard()) is not None:
            d.phases.compact = height < SHORT
            d.targets.most_rows = MOST_ROWS_SHORT if height < SHORT else MOST_ROWS
            if d.targets.names:
                d.targets.draw()

    # -- notifications ----------------------------------------------------------------------

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: Any = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """As App.notify, but held while a dialog is up (a toast would cover it) and shown
        when it closes; and without markup by default: the text often comes from outside
        (file names, reasons, the daemon's messages)."""
        kwargs = {"title": title, "severity": severity, "timeout": timeout, "markup": markup}
        if self.screen_stack and isinstance(self.screen, ModalScreen):
            self.held.append((message, kwargs))
            return
        super().notify(message, **kwargs)

    def on_screen_changed(self, screen: Screen[Any]) -> None:
        if not isinstance(screen, ModalScreen):
            held, self.held = self.held, []
            for message, kwargs in held:
                super().notify(message, **kwargs)

    # -- the connection ---------------------------------------------------------------------

    @work(exclusive=True, group="daemon")
    async def follow_daemon(self) -> None:
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
        if (d := self.dashboard()) is None:
            return
        who = f"{message.hello.get('user')}{'' if message.hello.get('approver') else ', read-only'}"
        d.status.show(connection="connected", detail=who)
        self.log_line(Text(f"connected as {who}", style="green"))
        # Joined mid-cycle: show what is known until the next phase event fills it in. Each
        # target says its running cycle (several may run); a daemon that runs one at a time,
        # only the status's `current`.
        running = [t.get("current") for t in message.status.get("targets") or []]
        running = [c for c in running if c] or [message.status.get("current")]
        # A cycle seen running before the connection went has ended since, or runs on (and
        # is listed again below): its outcome is in the target list and the history.
        self.cycles = {name: c for name, c in self.cycles.items() if not c.running}
        for current in running:
            if current and current.get("cycle_id") and current.get("target"):
                self.cycles[current["target"]] = joined(current)
        self.apply_status(message.status)
        self.show_phases()
        self.refresh_changes()

    def on_disconnected(self, message: m.Disconnected) -> None:
        self.client = None
        if (d := self.dashboard()) is None:
            return
        d.status.show(
            connection="reconnecting",
            detail=f"{message.reason}; retrying in {message.retry_in:g} s",
        )
        self.refresh_bindings()

    # -- events -----------------------------------------------------------------------------

    def log_line(self, text: Text | str) -> None:
        if (d := self.dashboard()) is not None:
            d.events.write(text)

    def on_event_logged(self, message: m.EventLogged) -> None:
        e = message.event
        event = event_from_dict(e)
        line = event.describe() if event is not None else None
        if line is None:
            return
        stamp = clock_time(e.get("at"))
        target = self.target_of(e)
        said = Text(f"{target} · ", style="bold") if target else Text("")
        self.log_line(Text(f"{stamp} ") + said + Text(line.strip()))

    def target_of(self, e: dict[str, Any]) -> str | None:
        """The target an event's line is about, while cycles on several targets run and their
        lines interleave in the log, when the line would not say it (a phase's, say). One
        cycle alone: its lines follow its "Cycle … on TARGET" line, and keep their width."""
        cycle_id = e.get("cycle_id")
        if cycle_id is None or e.get("target"):
            return None
        if sum(1 for c in self.cycles.values() if c.running) < 2:
            return None
        return next((c.target for c in self.cycles.values() if c.cycle_id == cycle_id), None)

    def on_cycle_started(self, message: m.CycleStarted) -> None:
        cycle = CycleView.started(message.event)
        if not cycle.branch:  # a target without a configured branch: the one checked out
            cycle.branch = next(
                (
                    t.get("branch") or ""
                    for t in self.status.get("targets") or []
                    if t.get("name") == cycle.target
                ),
                "",
            )
        self.cycles.pop(cycle.target, None)  # to the end: the newest last
        self.cycles[cycle.target] = cycle
        self.show_phases()
        self.refresh_changes()  # the daemon's state is "running" now

    def show_phases(self, *, list_too: bool = True) -> None:
        """The chosen target's cycle; else every running cycle (a line each when several
        run); else the last one. The target list's phase column follows (`list_too`: not
        for progress, which changes no phase)."""
        if (d := self.dashboard()) is None:
            return
        running = [c for c in self.cycles.values() if c.running]
        if self.target_filter is None and len(running) > 1:
            d.phases.show_all(running)
        else:
            d.phases.show(self.cycle)
        if list_too:
            d.targets.show(cycles=self.cycles, chosen=self.target_filter)

    def _phase_event(self, message: m.DaemonEvent) -> None:
        cycle_id = message.event.get("cycle_id")
        for cycle in self.cycles.values():
            if cycle.cycle_id == cycle_id:
                if cycle.apply(message.event):
                    self.show_phases(list_too=message.event.get("kind") != "PhaseProgress")
                return

    on_phase_started = _phase_event
    on_phase_progressed = _phase_event
    on_phase_finished = _phase_event

    def on_cycle_finished(self, message: m.CycleFinished) -> None:
        self._phase_event(message)
        self.refresh_changes()

    def on_approval_requested(self, message: m.ApprovalRequested) -> None:
        e = message.event
        self.follow = e["improvement_id"]
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

    def on_alarm(self, message: m.Alarm) -> None:
        e = message.event
        title, text = {
            "TargetNotEvaluable": (
                f"{e.get('target')} cannot be evaluated: nothing can be promoted",
                f"{e.get('reason')}" + (f"\n$ {e['command']}" if e.get("command") else ""),
            ),
            "TargetUnhealthy": (
                f"{e.get('target')} is unusable",
                f"cannot be used: {e.get('reason')}; no cycle runs on it until it can",
            ),
            "CircuitBreakerTripped": ("Circuit breaker: autonomy paused", f"{e.get('reason')}"),
        }.get(e.get("kind", ""), ("The daemon reports an error", f"{e.get('message')}"))
        self.notify(text, title=title, severity="error", timeout=20)
        self.refresh_changes()  # the status line says it too

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
            history = await client.request("history", limit=RECENT, target=self.target_filter)
        except (DaemonError, DaemonUnavailable):
            return
        self.recent = history["attempts"]
        self.apply_status(status)

    def apply_status(self, status: dict[str, Any]) -> None:
        if (d := self.dashboard()) is None:
            return  # an answer that arrived while the app was closing
        self.status = status
        names = [t.get("name") for t in status.get("targets") or []]
        if self.target_filter is not None and self.target_filter not in names:
            self.target_filter = None  # a reload removed it: every target again
        chosen = self.target_filter
        d.status.show(status=status)
        d.targets.show(status, self.cycles, chosen)
        pending = status.get("pending_approvals") or []
        recent = self.recent
        if chosen is not None:
            pending = [r for r in pending if r.get("target") == chosen]
            recent = [r for r in recent if r.get("target") == chosen]
        d.changes.show(pending, recent)
        if self.follow is not None and self.follow in d.changes.rows_by_id:
            if not self.person_moved_recently(d.changes):
                d.changes.select(self.follow)
            self.follow = None
        waiting = d.changes.waiting_count
        # The target shown alone; the list above has the way back ("all targets").
        where = f" on {chosen}" if chosen is not None else ""
        d.changes_title.update(
            f"Changes{where} — {waiting} awaiting a decision"
            if waiting
            else f"Changes{where} — none awaiting a decision"
        )
        self.show_detail()
        self.refresh_bindings()

    def person_moved_recently(self, table: ChangesTable) -> bool:
        touched = table.touched_at
        return touched is not None and time.monotonic() - touched < self.selection_hold

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # A highlight may be delivered after the screens are gone, while the app closes.
        if event.data_table.id == "changes" and self.dashboard() is not None:
            self.show_detail()
            self.refresh_bindings()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "changes" and event.row_key.value:
            self.open_attempt(event.row_key.value)
        elif event.data_table.id == "targets" and event.row_key.value is not None:
            key = event.row_key.value
            self.choose_target(None if key == ALL else key)

    def choose_target(self, name: str | None) -> None:
        """Show this target alone (its changes, its cycle, its stats), or every target."""
        if name == self.target_filter:
            return
        self.target_filter = name
        self.recent = []  # the other filter's; the refresh below brings this one's
        self.show_phases()
        if self.status:
            self.apply_status(self.status)
        self.refresh_changes()

    def selected_row(self) -> dict[str, Any] | None:
        d = self.dashboard()
        return d.changes.selected() if d is not None else None

    def show_detail(self) -> None:
        if (d := self.dashboard()) is None:
            return
        row = d.changes.selected()
        if row is None:
            d.detail.show(None)
            return
        full = self.details.get(row["improvement_id"])
        d.detail.show({**row, **full} if full else row)
        if full is None:
            self.load_detail(row["improvement_id"])

    @work(group="detail")
    async def load_detail(self, improvement_id: str) -> None:
        client = self.client
        if client is None:
            return
        with contextlib.suppress(DaemonError, DaemonUnavailable):
            self.details[improvement_id] = await client.request("show", id=improvement_id)
            row = self.selected_row()  # asked again: the app may be closing by now
            if row is not None and row["improvement_id"] == improvement_id:
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
        if self.is_running:
            await self.push_screen(AttemptScreen(data))

    # -- what the keys may do now -----------------------------------------------------------

    def why_not(self, action: str) -> str | None:
        """Why a dashboard action does not apply now, in words for the person; None if it
        does. The footer greys out what does not apply, and pressing it shows this."""
        d = self.dashboard()
        if d is None:
            return "the dashboard is not ready"
        names = [t.get("name") for t in self.status.get("targets") or []]
        if action == "next_target":  # chosen here: it needs no daemon
            if len(names) < 2:
                return f"only one target is configured ({', '.join(map(str, names)) or 'none'})"
            return None
        if self.client is None:
            return "not connected to the daemon (it reconnects by itself)"
        state = self.status.get("state")
        if action == "stats":
            return None
        if action == "run_now":
            if state == "paused":
                return "overseer is paused — p resumes it first"
            if state == "running":
                return "a cycle is already running"
            return None
        row = d.changes.selected()
        if action in ("approve", "reject"):
            verb = "approval" if action == "approve" else "a decision"
            hint = (
                "select a waiting change (⏸) with ↑ ↓"
                if d.changes.waiting_count
                else "no change awaits a decision now"
            )
            return _not_for(row, WAITING, f"awaits {verb}", f", it does not await {verb}", hint)
        if action == "rollback":
            hint = "select a promoted change here, or any in the history (h)"
            only = "; only a promoted change can be rolled back"
            return _not_for(row, ROLLBACKABLE, "to roll back", only, hint)
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        paused = self.status.get("state") == "paused"
        if action == "pause":
            return not paused  # hidden while paused: `p` resumes then
        if action == "resume":
            return paused
        if not self.dashboard_ready:
            return None  # starting or closing: Textual asks while the screens come and go
        if action in (
            "approve",
            "reject",
            "rollback",
            "run_now",
            "history",
            "next_target",
            "stats",
        ):
            if not self.on_dashboard:
                return False  # other screens have keys of their own
            if action != "history":
                return None if self.why_not(action) else True
        return True

    def on_key(self, event: events.Key) -> None:
        """A dashboard key that does not apply says why (its binding is greyed, so it ran
        nothing)."""
        action = EXPLAINED.get(event.key)
        if action is None or not self.on_dashboard:
            return
        reason = self.why_not(action)
        if reason is not None:
            self.notify(f"{event.key}: {reason}", title="Nothing done", timeout=6)

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

    @staticmethod
    def with_reason(args: dict[str, Any], reason: str) -> dict[str, Any]:
        return {**args, "reason": reason} if reason else args

    @work(group="decision")
    async def action_approve(self) -> None:
        row = self.selected_row()
        if not row or row["status"] not in WAITING:
            return
        body = (
            f"Promote {row['improvement_id'][:8]} — {row.get('change_type')} in {row.get('target_file')} "
            f"(risk {row.get('risk_level')}) — to its target branch?"
        )
        reason = await self.push_screen_wait(
            DecisionScreen("Approve this change?", body, "Approve", reason_required=False)
        )
        if reason is not None:
            result = await self.request(
                "approve", **self.with_reason({"id": row["improvement_id"]}, reason)
            )
            self.report(result, f"{row['improvement_id'][:8]} approved")

    @work(group="decision")
    async def action_reject(self) -> None:
        row = self.selected_row()
        if not row or row["status"] not in WAITING:
            return
        body = f"Reject {row['improvement_id'][:8]} — {row.get('change_type')} in {row.get('target_file')}. Why?"
        reason = await self.push_screen_wait(
            DecisionScreen("Reject this change", body, "Reject", reason_required=True)
        )
        if reason:
            result = await self.request("reject", id=row["improvement_id"], reason=reason)
            self.report(result, f"{row['improvement_id'][:8]} rejected")

    @work(group="decision")
    async def action_rollback(self) -> None:
        row = self.selected_row()
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
        reason = await self.push_screen_wait(
            DecisionScreen(f"Roll back {commit}?", body, "Roll back", reason_required=False)
        )
        if reason is None:
            return False
        result = await self.request(
            "rollback", id=row["improvement_id"], reason=reason or "rolled back from the TUI"
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
        several = len(self.status.get("targets") or []) > 1
        self.push_screen(HistoryScreen(self.target_filter, several=several))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_next_target(self) -> None:
        """All → the first target → … → the last → all again."""
        names = [t["name"] for t in self.status.get("targets") or []]
        self.choose_target(next_target(names, self.target_filter))

    def action_stats(self) -> None:
        self.push_screen(StatsScreen(self.target_filter))


def joined(current: dict[str, Any]) -> CycleView:
    """A cycle already running when the TUI connected, from what the status says of it."""
    cycle = CycleView(
        cycle_id=current["cycle_id"],
        target=current.get("target", ""),
        branch=current.get("branch") or "",
        started_at=current.get("since"),
        attempt=current.get("improvement_id"),
    )
    if current.get("phase"):
        cycle.apply(
            {
                "kind": "PhaseStarted",
                "cycle_id": current["cycle_id"],
                "improvement_id": current.get("improvement_id"),
                "phase": current["phase"],
            }
        )
    return cycle


def run(socket_path: Path) -> None:
    OverseerApp(socket_path).run()
