"""Every attempt in a table, a page at a time, filterable; enter opens one attempt. Of the
target the dashboard shows alone, or of every target."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from overseer.tui.model import clock_time
from overseer.tui.widgets.changes import (
    ROLLBACKABLE,
    STATUS_STYLE,
    FittedTable,
    score,
    short_status,
    tests_cell,
)

PAGE = 100
COLUMNS = (
    ("id", "id"),
    ("status", "status"),
    ("type", "type"),
    ("risk", "risk"),
    ("p", "p"),
    ("tests", "tests"),
    ("perf", "perf"),
    ("deployed", "deployed"),
    ("rolled_back", "rolled back"),
    ("started", "started"),
    ("completed", "completed"),
    ("file", "file"),
    ("target", "target"),  # only when the page lists several targets' attempts
)


def _yes(value: Any) -> str:
    return "yes" if value else "-"


class HistoryScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("slash", "filter", "Filter"),
        Binding("right_square_bracket,pagedown", "page(1)", "Next page"),
        Binding("left_square_bracket,pageup", "page(-1)", "Previous page"),
        Binding("R", "rollback", "Roll back"),
    ]

    def __init__(self, target: str | None = None, *, several: bool = False) -> None:
        super().__init__()
        self.target = target  # None: every target
        self.several = several and target is None  # then each row says its target
        self.page_start = 0
        self.total_rows = 0
        self.filter_text: str | None = None
        self.rows: dict[str, dict[str, Any]] = {}  # this page's attempts, by id

    def selected(self) -> dict[str, Any] | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.rows.get(key or "")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "rollback":  # any deployed change, however old, not only the dashboard's
            row = self.selected() if self.is_mounted else None
            return True if row and row["status"] in ROLLBACKABLE else None
        return True

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.refresh_bindings()

    @work(group="decision")
    async def action_rollback(self) -> None:
        row = self.selected()
        if row and await self.app.roll_back(row):  # type: ignore[attr-defined]
            self.load()

    def compose(self) -> ComposeResult:
        yield Static("History", id="history-title")
        yield Input(
            placeholder="filter: id, file, rule, type or status — enter to apply",
            id="history-filter",
        )
        yield FittedTable(cursor_type="row", id="history-table")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self.load()

    @work(exclusive=True, group="history")
    async def load(self) -> None:
        from overseer.client import DaemonError

        client = self.app.client  # type: ignore[attr-defined]
        title = self.query_one("#history-title", Static)
        if client is None:
            title.update("History — not connected to the daemon")
            return
        try:
            page = await client.request(
                "history",
                limit=PAGE,
                offset=self.page_start,
                search=self.filter_text,
                target=self.target,
            )
        except DaemonError as exc:
            title.update(f"History — {exc.message}")
            return
        if not self.is_attached:
            return  # the screen was closed while the page was on its way
        self.total_rows = page["total"]
        self.rows = {r["improvement_id"]: r for r in page["attempts"]}
        columns = tuple(c for c in COLUMNS if c[0] != "target" or self.several)
        cells = [self.cells(r) for r in page["attempts"]]
        widths = FittedTable.measured(columns, cells)
        self.query_one(FittedTable).fill(
            [(key, label, widths[key]) for key, label in columns],
            [
                (r["improvement_id"], [c[key] for key, _ in columns])
                for r, c in zip(page["attempts"], cells, strict=True)
            ],
        )
        shown = (
            f"{self.page_start + 1}–{self.page_start + len(page['attempts'])}"
            if page["attempts"]
            else "none"
        )
        where = f" matching “{self.filter_text}”" if self.filter_text else ""
        of = f" of {self.target}" if self.target is not None else ""
        title.update(
            f"History{of} — {shown} of {self.total_rows} attempts{where}  ([ ] pages, / filter, enter opens, R rolls back)"
        )

    @staticmethod
    def cells(r: dict[str, Any]) -> dict[str, Text | str]:
        delta = r.get("performance_delta")
        return {
            "id": r["improvement_id"][:8],
            "status": Text(short_status(r["status"]), style=STATUS_STYLE.get(r["status"], "")),
            "type": r.get("change_type") or "-",
            "risk": r.get("risk_level") or "-",
            "p": score(r.get("success_score")),
            "tests": tests_cell(r),
            "perf": f"{delta:+.1f}%" if isinstance(delta, int | float) else "-",
            "deployed": _yes(r.get("was_deployed")),
            "rolled_back": _yes(r.get("was_rolled_back")),
            "started": clock_time(r.get("started_at")),
            "completed": clock_time(r.get("completed_at")),
            "file": r.get("target_file") or "-",
            "target": r.get("target") or "-",
        }

    def action_page(self, step: int) -> None:
        new = self.page_start + step * PAGE
        if 0 <= new < max(self.total_rows, 1):
            self.page_start = new
            self.load()

    def action_filter(self) -> None:
        self.query_one(Input).focus()

    def action_back(self) -> None:
        if self.query_one(Input).has_focus:
            self.query_one(DataTable).focus()
        else:
            self.app.pop_screen()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.filter_text = event.value.strip() or None
        self.page_start = 0
        self.query_one(DataTable).focus()
        self.load()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.app.open_attempt(event.row_key.value)  # type: ignore[attr-defined]
