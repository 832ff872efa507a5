"""Every target at a glance: its state, the phase its cycle is in, how its last cycle ended and
when, its next cycle, its budget and its health. Enter (or `t`) shows one target only.

The daemon says each target's `state`, `current`, `next_run` (status `targets`); a daemon that
does not yet (one cycle at a time) is read as well as it can be: the running cycle is the one
the events say, the next run the daemon's.
"""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.text import Text

from overseer.tui.model import CycleView, clock_time
from overseer.tui.widgets.changes import SCROLLBAR, FittedTable
from overseer.tui.widgets.phases import focus

# The key of the first row, which shows every target again: no target's name is empty.
ALL = ""
STATE_STYLE = {
    "running": "bold cyan",
    "waiting": "yellow",
    "paused": "bold yellow",
    "unusable": "bold red",
    "idle": "dim",
}
COLUMNS = (
    ("target", "target"),
    ("state", "state"),
    ("phase", "phase"),
    ("last", "last cycle"),
    ("next", "next"),
    ("budget", "budget"),
    ("health", "health"),
)
# Narrow, these go first, in this order, until the health column has room for its reason.
DROP_FIRST = ("budget", "next", "phase")
HEALTH_ROOM = 24
# Rows shown at most, then the list scrolls: the changes and events keep their room (fewer
# on a short terminal).
MOST_ROWS = 6
MOST_ROWS_SHORT = 3


def next_target(names: list[str], current: str | None) -> str | None:
    """What `t` goes to: every target (None) → the first → … → the last → every target."""
    order: list[str | None] = [None, *names]
    at = order.index(current) if current in order else 0
    return order[(at + 1) % len(order)]


def target_state(target: dict[str, Any], status: dict[str, Any], running: set[str]) -> str:
    """running | waiting | idle | paused | unusable: the daemon's word when it gives one."""
    if target.get("state"):
        return str(target["state"])
    if target.get("healthy") is False:
        return "unusable"
    if target["name"] in running:
        return "running"
    if status.get("state") == "paused":
        return "paused"
    return "idle"


def running_targets(status: dict[str, Any], cycles: dict[str, CycleView]) -> set[str]:
    """The targets a cycle runs on: as the events said, or the status (on connecting)."""
    names = {name for name, c in cycles.items() if c.running}
    for t in status.get("targets") or []:
        if t.get("current"):
            names.add(t["name"])
    current = status.get("current")
    if current and current.get("target") and status.get("state") == "running":
        names.add(current["target"])
    return names


def phase_of(target: dict[str, Any], cycle: CycleView | None) -> str:
    if cycle is not None and cycle.running:
        p = focus(cycle)
        return p.name if p is not None else "-"
    current = target.get("current") or {}
    return str(current.get("phase") or "-")


def last_cell(target: dict[str, Any]) -> Text:
    last = target.get("last_cycle") or {}
    if not last:
        return Text("-", style="dim")
    when = clock_time(last.get("finished_at") or last.get("started_at"))[:5]
    if last.get("not_evaluable"):
        return Text(f"not evaluable {when}", style="bold red")
    status = str(last.get("status") or "?")
    return Text(f"{status} {when}", style="green" if status == "ok" else "red")


def next_cell(target: dict[str, Any], status: dict[str, Any], state: str) -> str:
    if state in ("paused", "unusable"):
        return "-"
    when = target.get("next_run") if "next_run" in target else status.get("next_run")
    return clock_time(when)[:5] if when else "-"


def budget_cell(target: dict[str, Any]) -> str:
    budget = target.get("budget")
    if not budget:
        return "-"
    hour, day = budget["hour"], budget["day"]
    return f"{hour['used']}/{hour['limit']} h · {day['used']}/{day['limit']} d"


def health_cell(target: dict[str, Any]) -> Text:
    if target.get("healthy") is False:
        return Text(f"✘ {target.get('reason') or '?'}", style="bold red")
    return Text("✔", style="green")


class TargetsTable(FittedTable):
    def __init__(self, **kw: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kw)
        self.names: list[str] = []
        self.chosen: str | None = None  # the target the dashboard shows alone (None: all)
        self.status: dict[str, Any] = {}
        self.cycles: dict[str, CycleView] = {}
        self.most_rows = MOST_ROWS

    def show(
        self,
        status: dict[str, Any] | None = None,
        cycles: dict[str, CycleView] | None = None,
        chosen: str | None = None,
    ) -> None:
        if status is not None:
            self.status = status
        if cycles is not None:
            self.cycles = cycles
        self.chosen = chosen
        self.names = [t["name"] for t in self.status.get("targets") or []]
        self.draw()

    def on_resize(self, event: Any) -> None:
        if self.names:
            self.draw()

    def target_rows(self) -> list[tuple[str, dict[str, Any]]]:
        targets = self.status.get("targets") or []
        running = running_targets(self.status, self.cycles)
        out: list[tuple[str, dict[str, Any]]] = []
        if len(targets) > 1:
            busy = sum(1 for t in targets if target_state(t, self.status, running) == "running")
            healthy = all(t.get("healthy") is not False for t in targets)
            out.append(
                (
                    ALL,
                    {
                        "target": Text("all targets", style="bold"),
                        "state": Text(f"{busy} running" if busy else "", style="cyan"),
                        "phase": "",
                        "last": "",
                        "next": "",
                        "budget": "",
                        "health": Text("✔", style="green")
                        if healthy
                        else Text("✘", style="bold red"),
                    },
                )
            )
        for t in targets:
            state = target_state(t, self.status, running)
            out.append(
                (
                    t["name"],
                    {
                        "target": Text(t["name"], style="bold"),
                        "state": Text(state, style=STATE_STYLE.get(state, "")),
                        "phase": phase_of(t, self.cycles.get(t["name"])),
                        "last": last_cell(t),
                        "next": next_cell(t, self.status, state),
                        "budget": budget_cell(t),
                        "health": health_cell(t),
                    },
                )
            )
        return out

    def draw(self) -> None:
        rows = self.target_rows()
        widths = self.measured(COLUMNS, [cells for _, cells in rows])
        shown = [key for key, _ in COLUMNS]
        pad = 2 * self.cell_padding
        if self.outer_size.width:
            # Kept free for the vertical scrollbar when the rows need one, so it forces no
            # horizontal one.
            width = self.outer_size.width - (SCROLLBAR if len(rows) > self.most_rows else 0)

            def room() -> int:  # what the columns before health leave it
                used = sum(widths[k] + pad for k in shown if k != "health")
                return width - used - pad

            for drop in DROP_FIRST:
                if room() >= min(widths["health"], HEALTH_ROOM):
                    break
                shown.remove(drop)
            widths["health"] = max(1, min(widths["health"], room()))
        labels = dict(COLUMNS)
        columns = [(k, labels[k], widths[k]) for k in shown]
        cells = [(key, [clipped(c[k], widths[k]) for k in shown]) for key, c in rows]
        keep = self.chosen if self.chosen is not None else (ALL if len(rows) > 1 else None)
        if self.has_focus and self.highlighted() is not None:
            keep = self.highlighted()  # the person is moving through the list: left alone
        self.fill(columns, cells, keep)
        self.styles.height = min(len(rows), self.most_rows) + 1  # and the header

    def highlighted(self) -> str | None:
        """The target under the cursor (ALL: the row of every target), or None."""
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return key.value


def clipped(cell: Text | str, width: int) -> Text | str:
    """A cell cut to its column with an ellipsis (a long reason, a long name)."""
    text = cell if isinstance(cell, Text) else Text(cell)
    if cell_len(text.plain) <= width:
        return cell
    text = text.copy()
    text.truncate(width, overflow="ellipsis")
    return text
