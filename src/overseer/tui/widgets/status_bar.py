"""The top line: connection, daemon state, targets that cannot be used or evaluated, generators
that are off (why: on hover), autonomy, dry-run, next cycle, the changes made against the rate
limits. When the terminal is too narrow for all of it, it flows onto more lines between its
items (never inside one), rather than losing its end."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import events
from textual.widgets import Static

from overseer.tui.model import clock_time
from overseer.vocabulary import budget_text

GAP = "  "


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
        self.update(self.status_text(self.size.width or None))
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

    def on_resize(self, event: events.Resize) -> None:
        self.update(self.status_text(event.size.width or None))

    def generators_off(self) -> list[dict[str, Any]]:
        if self.connection != "connected":
            return []
        return [g for g in self.status.get("generators") or [] if g.get("healthy") is False]

    def status_text(self, width: int | None = None) -> Text:
        """The items, joined on one line, or flowed onto more when `width` is too narrow."""
        line = Text(" ")
        used = 1
        for number, item in enumerate(self.items()):
            if number and width is not None and used + len(GAP) + item.cell_len > width:
                line.append("\n ")
                used = 1
            elif number:
                line.append(GAP)
                used += len(GAP)
            line.append_text(item)
            used += item.cell_len
        return line

    def items(self) -> list[Text]:
        s = self.status
        out: list[Text] = []

        def add(text: str, style: str = "") -> None:
            out.append(Text(text, style=style))

        targets = s.get("targets") or []
        if len(targets) == 1:
            add(f"{targets[0]['name']}@{targets[0].get('branch') or '?'}", "bold")
        elif targets:  # each with its branch and budget in the target list below
            add(f"{len(targets)} targets", "bold")
        colour = {"connected": "green", "reconnecting": "yellow"}.get(self.connection, "red")
        add(f"● {self.connection}" + (f" ({self.detail})" if self.detail else ""), colour)
        if not s or self.connection != "connected":
            return out
        state = s.get("state", "?")
        if state == "paused":
            paused = s.get("paused") or {}
            since = f" since {clock_time(paused['at'])[:5]}" if paused.get("at") else ""
            item = Text(f"⏸ PAUSED{since} by {paused.get('user', '?')}", style="bold yellow")
            reason = str(paused.get("reason") or "")
            if reason:  # the circuit breaker says why; `p` resumes
                item.append(f": {short(reason, 70)}", style="yellow")
            out.append(item)
        else:
            add(state.upper(), "bold")
        if s.get("history_problem"):  # locked by another process, disk full
            add("⚠ HISTORY NOT WRITTEN", "bold red")
        for t in targets:  # what needs a person: a target unusable, or its tests not running
            if t.get("healthy") is False:
                add(f"⚠ {t['name']} UNUSABLE: {short(t.get('reason'))}", "bold red")
            elif (t.get("last_cycle") or {}).get("not_evaluable"):
                why = short(t["last_cycle"]["not_evaluable"])
                add(f"✘ {t['name']} NOT EVALUABLE: {why}", "bold red")
        for g in self.generators_off():
            add(f"{g['name']} OFF", "bold red")
        add(str(s.get("autonomy", "?")).upper())
        add(*(("dry-run on", "") if s.get("dry_run") else ("dry-run off", "bold")))
        if state != "paused" and s.get("next_run"):  # a paused daemon starts no cycle
            add(f"next {clock_time(s.get('next_run'))[:5]}")
        if len(targets) == 1 and targets[0].get("budget"):
            # The rate limits: changes made against the policy's limits, as `status` says it
            # (several targets: each one's in the target list).
            add(budget_text(targets[0]["budget"]))
        return out


def short(text: object, limit: int = 60) -> str:
    """The text, its middle cut when long: reasons end with what matters (`… does not exist`)
    and start with what it is about."""
    shown = str(text or "?")
    if len(shown) <= limit:
        return shown
    head = limit // 3
    return shown[:head] + "…" + shown[-(limit - head - 1) :]
