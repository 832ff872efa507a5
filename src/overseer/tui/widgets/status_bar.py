"""The top line: connection, daemon state, generators that are off (why: on hover), autonomy,
dry-run, next cycle, the changes made against the rate limits. On a narrow terminal it wraps
onto a second line rather than losing its end."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from overseer.tui.model import clock_time


class StatusBar(Static):
    def __init__(self, **kw: Any) -> None:
        super().__init__("", **kw)
        self.connection = "connecting"
        self.detail = ""
        self.status: dict[str, Any] = {}

    def show(
        self,
        *,
        connection: str | None = None,
        detail: str | None = None,
        status: dict[str, Any] | None = None,
    ) -> None:
        if connection is not None:
            self.connection = connection
        if detail is not None:
            self.detail = detail
        if status is not None:
            self.status = status
        self.update(self.status_text())
        # The bar has room for "llm OFF", not for why: the reason is one hover away.
        off = self.generators_off()
        self.tooltip = (
            "\n".join(
                f"{g.get('label') or g['name']} is off since {clock_time(g.get('since'))[:5]}: "
                f"{g.get('reason')} (checked again at {clock_time(g.get('next_check'))[:5]})"
                for g in off
            )
            or None
        )

    def generators_off(self) -> list[dict[str, Any]]:
        if self.connection != "connected":
            return []
        return [g for g in self.status.get("generators") or [] if g.get("healthy") is False]

    def status_text(self) -> Text:
        s = self.status
        line = Text(" overseer ", style="bold reverse")
        targets = s.get("targets") or []
        if targets:
            first = targets[0]
            more = f" +{len(targets) - 1}" if len(targets) > 1 else ""
            line.append(f"  {first['name']}@{first.get('branch') or '?'}{more}")
        colour = {"connected": "green", "reconnecting": "yellow"}.get(self.connection, "red")
        line.append(f"  ● {self.connection}", style=colour)
        if self.detail:
            line.append(f" ({self.detail})", style=colour)
        if not s or self.connection != "connected":
            return line
        state = s.get("state", "?")
        if state == "paused":
            paused = s.get("paused") or {}
            line.append(f"  ⏸ PAUSED by {paused.get('user', '?')}", style="bold yellow")
            reason = str(paused.get("reason") or "")
            if reason:  # the circuit breaker says why; `p` resumes
                shown = reason if len(reason) <= 70 else reason[:69] + "…"
                line.append(f": {shown}", style="yellow")
        else:
            line.append(f"  {state.upper()}", style="bold")
        if s.get("history_problem"):  # locked by another process, disk full
            line.append("  ⚠ HISTORY NOT WRITTEN", style="bold red")
        for g in self.generators_off():
            line.append(f"  {g['name']} OFF", style="bold red")
        line.append(f"  {str(s.get('autonomy', '?')).upper()}")
        line.append(
            "  dry-run on" if s.get("dry_run") else "  dry-run off",
            style="" if s.get("dry_run") else "bold",
        )
        if state != "paused" and s.get("next_run"):  # a paused daemon starts no cycle
            line.append(f"  next {clock_time(s.get('next_run'))[:5]}")
        if targets:
            b = targets[0]["budget"]
            # The rate limits: changes made against the policy's limits (the legend says so).
            line.append(
                f"  changes {b['hour']['used']}/{b['hour']['limit']} this hour"
                f" · {b['day']['used']}/{b['day']['limit']} today"
            )
        return line
