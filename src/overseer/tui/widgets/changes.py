"""The changes that wait for a decision, then the most recent others."""

from __future__ import annotations

from typing import Any

from rich.text import Text
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


def short_status(status: str) -> str:
    return {
        "awaiting_approval": "⏸ awaiting",
        "ready_to_promote": "⏸ ready",
        "rolled_back": "↩ rolled back",
    }.get(status, status.replace("_", " "))


def score(value: Any) -> str:
    return f"p {value:.2f}" if isinstance(value, int | float) else "p -"


class ChangesTable(DataTable[Any]):
    def __init__(self, **kw: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kw)
        self.rows_by_id: dict[str, dict[str, Any]] = {}

    def on_mount(self) -> None:
        self.add_columns("id", "status", "type", "risk", "file", "score", "tests")

    def show(self, pending: list[dict[str, Any]], recent: list[dict[str, Any]]) -> None:
        keep = self.selected_id()
        seen: set[str] = set()
        rows = []
        for row in [*pending, *recent]:
            if row["improvement_id"] not in seen:
                seen.add(row["improvement_id"])
                rows.append(row)
        self.rows_by_id = {r["improvement_id"]: r for r in rows}
        self.clear()
        for r in rows:
            tests = (
                "-"
                if r.get("tests_passed") is None
                else f"{r['tests_passed']}✔ {r.get('tests_failed') or 0}✘"
            )
            file = r.get("target_file") or "-"
            self.add_row(
                r["improvement_id"][:8],
                Text(short_status(r["status"]), style=STATUS_STYLE.get(r["status"], "")),
                r.get("change_type") or "-",
                r.get("risk_level") or "-",
                file if len(file) <= 24 else "…" + file[-23:],
                score(r.get("success_score")),
                tests,
                key=r["improvement_id"],
            )
        if keep in self.rows_by_id:
            self.move_cursor(row=self.get_row_index(keep))

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
