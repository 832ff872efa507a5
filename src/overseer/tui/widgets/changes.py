"""The changes that wait for a decision, then the most recent others."""

from __future__ import annotations

import time
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.widgets import DataTable

WAITING = ("awaiting_approval", "ready_to_promote")
ROLLBACKABLE = ("promoted", "regressed")  # deployed and not yet reverted
STATUS_STYLE = {
    "awaiting_approval": "bold yellow",
    "ready_to_promote": "yellow",
    "promoted": "green",
    "rolled_back": "magenta",
    "failed": "red",
    "denied": "red",
    "rejected": "dim",
    "expired": "dim",
    "interrupted": "red",
    "regressed": "bold red",
}
# The columns, in the order they are shown; narrow, the first of DROP_FIRST go first.
COLUMNS = (
    ("id", "id"),
    ("status", "status"),
    ("type", "type"),
    ("risk", "risk"),
    ("file", "file"),
    ("p", "p"),
    ("tests", "tests"),
)
DROP_FIRST = ("type", "tests", "risk", "p")
FILE_WIDTH = (40, 14)  # the file column's widest and narrowest (then columns are dropped)
SCROLLBAR = 2  # kept free when the rows need a vertical scrollbar, so it forces no horizontal one


def short_status(status: str) -> str:
    return {
        "awaiting_approval": "⏸ awaiting",
        "ready_to_promote": "⏸ ready",
        "rolled_back": "↩ rolled back",
    }.get(status, status.replace("_", " "))


def score(value: Any) -> str:
    """The predicted success as a percentage (the column `p`)."""
    return f"{value * 100:.0f}%" if isinstance(value, int | float) else "-"


def tests_cell(row: dict[str, Any]) -> str:
    if row.get("tests_passed") is None:
        return "-"
    return f"{row['tests_passed']}✔ {row.get('tests_failed') or 0}✘"


def tail(text: str, width: int) -> str:
    """The end of a path, which says more than its start: `…ils/strings.py`."""
    return text if cell_len(text) <= width else "…" + text[-(width - 1) :]


def width_of(cell: Text | str) -> int:
    return cell.cell_len if isinstance(cell, Text) else cell_len(cell)


class FittedTable(DataTable[Any]):
    """A table whose column widths are measured here, when its rows are given, not later.

    DataTable measures auto-width columns when it is next idle, but a frame drawn before that
    stays cached with the old widths: under load the same rows came out with the columns of
    the previous refresh. Fixed widths, computed from the rows before they are added, draw
    the same on every run.
    """

    def fill(
        self,
        columns: list[tuple[str, str, int]],
        rows: list[tuple[str, list[Text | str]]],
        keep: str | None = None,
    ) -> None:
        """Show `rows` (key, cells) under `columns` (key, label, width), keeping the cursor
        on the row `keep` when it is still there."""
        layout = [(key, width) for key, _, width in columns]
        if layout != [(c.key.value, c.width) for c in self.ordered_columns]:
            self.clear(columns=True)
            for key, label, width in columns:
                self.add_column(label, width=width, key=key)
        else:
            self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        if keep is not None and keep in {key for key, _ in rows}:
            self.move_cursor(row=self.get_row_index(keep), animate=False)

    @staticmethod
    def measured(
        columns: tuple[tuple[str, str], ...], rows: list[dict[str, Any]]
    ) -> dict[str, int]:
        """Each column's width: its widest cell or its label."""
        widths = {key: cell_len(label) for key, label in columns}
        for cells in rows:
            for key, cell in cells.items():
                widths[key] = max(widths.get(key, 0), width_of(cell))
        return widths


class ChangesTable(FittedTable):
    def __init__(self, **kw: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kw)
        self.rows_by_id: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.touched_at: float | None = None  # when the person last moved the selection

    # -- what the person does ---------------------------------------------------------------

    def touch(self) -> None:
        self.touched_at = time.monotonic()

    def action_cursor_up(self) -> None:
        self.touch()
        super().action_cursor_up()

    def action_cursor_down(self) -> None:
        self.touch()
        super().action_cursor_down()

    def action_page_up(self) -> None:
        self.touch()
        super().action_page_up()

    def action_page_down(self) -> None:
        self.touch()
        super().action_page_down()

    def action_scroll_top(self) -> None:
        self.touch()
        super().action_scroll_top()

    def action_scroll_bottom(self) -> None:
        self.touch()
        super().action_scroll_bottom()

    def on_click(self, event: events.Click) -> None:
        self.touch()

    # -- what the daemon says ---------------------------------------------------------------

    def show(self, pending: list[dict[str, Any]], recent: list[dict[str, Any]]) -> None:
        rows: dict[str, dict[str, Any]] = {}
        for row in [*pending, *recent]:
            rows.setdefault(row["improvement_id"], row)
        self.rows_by_id = rows
        self.order = list(rows)
        self.draw()

    def select(self, improvement_id: str) -> bool:
        """Move the selection to this change (not the person's doing). True if it is listed."""
        if improvement_id not in self.rows_by_id:
            return False
        self.move_cursor(row=self.order.index(improvement_id), animate=False)
        return True

    def on_resize(self, event: events.Resize) -> None:
        if self.rows_by_id or self.row_count == 0:
            self.draw()

    def draw(self) -> None:
        keep = self.selected_id()
        cells = [self.cells(self.rows_by_id[iid]) for iid in self.order]
        widths = self.measured(COLUMNS, cells)
        shown = [key for key, _ in COLUMNS]
        if self.outer_size.width:  # before the first layout there is no width to fit
            full = min(widths["file"], FILE_WIDTH[0])
            scrolls = len(self.order) + 1 > self.outer_size.height  # rows and the header
            room = self.outer_size.width - (SCROLLBAR if scrolls else 0)

            def over() -> int:
                return sum(widths[k] + 2 * self.cell_padding for k in shown) - room

            # Narrow the file column first, then drop columns; room left goes back to it.
            widths["file"] = max(min(full, FILE_WIDTH[1]), full - max(0, over()))
            for drop in DROP_FIRST:
                if over() <= 0:
                    break
                shown.remove(drop)
            widths["file"] = min(full, widths["file"] - min(0, over()))
        labels = dict(COLUMNS)
        columns = [(k, labels[k], widths[k]) for k in shown]
        rows = [
            (iid, [tail(c[k], widths[k]) if k == "file" else c[k] for k in shown])
            for iid, c in zip(self.order, cells, strict=True)
        ]
        self.fill(columns, rows, keep)

    @staticmethod
    def cells(r: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": r["improvement_id"][:8],
            "status": Text(short_status(r["status"]), style=STATUS_STYLE.get(r["status"], "")),
            "type": r.get("change_type") or "-",
            "risk": r.get("risk_level") or "-",
            "file": r.get("target_file") or "-",
            "p": score(r.get("success_score")),
            "tests": tests_cell(r),
        }

    # -- what is selected -------------------------------------------------------------------

    def selected_id(self) -> str | None:
        if not self.rows_by_id or self.cursor_row < 0 or self.row_count == 0:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return key.value if key is not None else None

    def selected(self) -> dict[str, Any] | None:
        iid = self.selected_id()
        return self.rows_by_id.get(iid) if iid else None

    @property
    def waiting_count(self) -> int:
        return sum(1 for r in self.rows_by_id.values() if r["status"] in WAITING)
