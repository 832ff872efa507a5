"""The current cycle's seven phases: state, elapsed time, progress bar, summary.

On a short terminal (`compact`) the phases take three lines: the cycle, every phase's mark on
one line, and the phase that matters now — the running one, else a failed one, else the last
that ran — with its time and progress bar or summary.

When cycles run on several targets at once, each takes one line: its target, the phase that
matters now, its time and progress (`show_all`); selecting a target shows its cycle whole.
"""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from overseer.tui.model import PHASES, CycleView, PhaseView, clock_time

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
        # The cycles running at once on several targets (empty: `cycle` is shown whole).
        self.several: list[CycleView] = []
        self._compact = False

    @property
    def compact(self) -> bool:
        return self._compact

    @compact.setter
    def compact(self, value: bool) -> None:
        if value != self._compact:
            self._compact = value
            self.set_class(value, "-compact")
            self.update(self.render_table())

    def show(self, cycle: CycleView, now: float | None = None) -> None:
        self.cycle = cycle
        self.several = []
        self.update(self.render_table(now))

    def show_all(self, cycles: list[CycleView], now: float | None = None) -> None:
        """Every running cycle: one whole when it is the only one, else a line each."""
        if len(cycles) <= 1:
            self.show(cycles[0] if cycles else CycleView(), now)
            return
        self.cycle = cycles[0]
        self.several = cycles
        self.update(self.render_table(now))

    def tick(self) -> None:
        if self.cycle.running or any(c.running for c in self.several):
            self.update(self.render_table())

    def title(self) -> str:
        c = self.cycle
        if c.cycle_id is None and c.target:  # a target chosen: its last cycle is in the list
            title = f"No cycle on {c.target} seen here yet: `n` runs one now"
        elif c.cycle_id is None:
            title = "No cycle yet: `n` runs one now"
        else:
            where = (
                f" on {c.target}@{c.branch}" if c.branch else f" on {c.target}" if c.target else ""
            )
            state = "" if c.running else f" — {c.status}"
            attempt = f" · attempt {c.attempt[:8]}" if c.attempt else ""
            title = f"Cycle {c.cycle_id[:8]} ({clock_time(c.started_at)}){where}{attempt}{state}"
        return title

    def render_table(self, now: float | None = None) -> Table:
        now = now if now is not None else time.monotonic()
        if self.several:
            return self.render_several(now)
        if self.compact:
            return self.render_compact(now)
        c = self.cycle
        table = Table.grid(padding=(0, 1), expand=True)
        table.title = self.title()
        table.title_justify = "left"
        table.title_style = "bold"
        table.add_column(width=2)
        table.add_column(width=9)
        table.add_column(width=7, justify="right")
        table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        for name in PHASES:
            p = c.phases[name]
            mark, style = MARKS.get(p.state, ("?", ""))
            table.add_row(
                Text(mark, style=style),
                Text(name, style=style if p.state != "pending" else "dim"),
                took(p, now),
                detail(p),
            )
        return table

    def render_compact(self, now: float) -> Table:
        c = self.cycle
        table = Table.grid(padding=(0, 1), expand=True)
        table.title = self.title()
        table.title_justify = "left"
        table.title_style = "bold"
        table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        marks = Text()
        for name in PHASES:
            p = c.phases[name]
            mark, style = MARKS.get(p.state, ("?", ""))
            marks.append(f"{mark} ", style=style)
            marks.append(f"{name}  ", style=style if p.state != "pending" else "dim")
        table.add_row(marks)
        now_phase = focus(c)
        if now_phase is not None:
            line = Text(f"{now_phase.name} ", style="bold")
            line.append(f"{took(now_phase, now)}  ")
            line.append(detail(now_phase))
            table.add_row(line)
        return table

    def render_several(self, now: float) -> Table:
        """A line per running cycle, as many as there is room for, then how many more."""
        table = Table.grid(padding=(0, 1), expand=True)
        table.title = (
            f"{len(self.several)} cycles running — t selects a target to see all its phases"
        )
        table.title_justify = "left"
        table.title_style = "bold"
        table.add_column(width=2)
        table.add_column(max_width=16, no_wrap=True, overflow="ellipsis")
        table.add_column(width=9)
        table.add_column(width=7, justify="right")
        table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        room = 2 if self.compact else 7  # the lines below the title
        shown = self.several if len(self.several) <= room else self.several[: room - 1]
        for c in shown:
            p = focus(c)
            mark, style = MARKS.get(p.state if p else "pending", ("?", ""))
            table.add_row(
                Text(mark, style=style),
                Text(c.target or "?", style="bold"),
                Text(p.name if p else "-", style=style),
                took(p, now) if p else "",
                detail(p) if p else "",
            )
        if len(shown) < len(self.several):
            more = len(self.several) - len(shown)
            table.add_row("", Text(f"+{more} more: t selects one", style="dim"), "", "", "")
        return table


def took(p: PhaseView, now: float) -> str:
    elapsed = p.elapsed(now)
    return f"{elapsed:.1f} s" if elapsed is not None and p.state != "skipped" else ""


def detail(p: PhaseView) -> Text | str:
    if p.state == "running" and p.total:
        progress = bar(p.done or 0, p.total)
        progress.append(f"  {p.message} {p.done}/{p.total}")
        return progress
    if p.state == "running":
        return p.message
    return p.summary


def focus(cycle: CycleView) -> PhaseView | None:
    """The phase a short screen shows: the running one, else a failed one, else the last that
    ran (RECORD's summary repeats the status, so EVALUATE's says more)."""
    phases = [cycle.phases[name] for name in PHASES]
    for state in ("running", "failed"):
        for p in phases:
            if p.state == state:
                return p
    ran = [p for p in phases if p.state == "ok" and p.name != "RECORD"]
    return ran[-1] if ran else None
