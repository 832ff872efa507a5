"""The current cycle's seven phases: state, elapsed time, progress bar, summary."""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from overseer.tui.model import PHASES, CycleView, clock_time

MARKS = {
    "pending": ("·", "dim"),
    "running": ("▶", "bold cyan"),
    "ok": ("✔", "green"),
    "failed": ("✘", "red"),
    "skipped": ("–", "yellow"),
}
BAR_WIDTH = 18


def bar(done: int, total: int) -> Text:
    filled = int(BAR_WIDTH * done / total) if total else 0
    text = Text("━" * filled, style="cyan")
    text.append("╺" + "━" * max(0, BAR_WIDTH - filled - 1), style="dim")
    text.append(f" {int(100 * done / total) if total else 0:3d} %")
    return text


class Phases(Static):
    def __init__(self, **kw: Any) -> None:
        super().__init__("", **kw)
        self.cycle = CycleView()

    def show(self, cycle: CycleView, now: float | None = None) -> None:
        self.cycle = cycle
        self.update(self.render_table(now))

    def tick(self) -> None:
        if self.cycle.running:
            self.update(self.render_table())

    def render_table(self, now: float | None = None) -> Table:
        now = now if now is not None else time.monotonic()
        c = self.cycle
        if c.cycle_id is None:
            title = "No cycle yet: `n` runs one now"
        else:
            where = f" on {c.target}@{c.branch}" if c.target else ""
            state = "" if c.running else f" — {c.status}"
            attempt = f" · attempt {c.attempt[:8]}" if c.attempt else ""
            title = f"Cycle {c.cycle_id[:8]} ({clock_time(c.started_at)}){where}{attempt}{state}"
        table = Table.grid(padding=(0, 1), expand=True)
        table.title = title
        table.title_justify = "left"
        table.title_style = "bold"
        table.add_column(width=2)
        table.add_column(width=9)
        table.add_column(width=7, justify="right")
        table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        for name in PHASES:
            p = c.phases[name]
            mark, style = MARKS.get(p.state, ("?", ""))
            elapsed = p.elapsed(now)
            took = f"{elapsed:.1f} s" if elapsed is not None and p.state != "skipped" else ""
            if p.state == "running" and p.total:
                progress = bar(p.done or 0, p.total)
                progress.append(f"  {p.message} {p.done}/{p.total}")
                detail: Text | str = progress
            elif p.state == "running":
                detail = p.message
            else:
                detail = p.summary
            table.add_row(
                Text(mark, style=style),
                Text(name, style=style if p.state != "pending" else "dim"),
                took,
                detail,
            )
        return table
