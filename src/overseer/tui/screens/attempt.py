"""One attempt's full provenance: analysis, verdict, tests, commit, decisions, events, diff."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from overseer.render import show_attempt


class AttemptScreen(Screen[None]):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__()
        self.data = data

    def compose(self) -> ComposeResult:
        data = dict(self.data)
        events = data.pop("events", [])
        approvals = data.pop("approvals", [])
        diff = data.get("generated_code") or ""
        text = show_attempt({**data, "generated_code": None}, events, approvals)
        body: list[Any] = [Text(text)]
        if diff:
            body.append(Text("Diff", style="bold"))
            body.append(Syntax(diff, "diff", theme="ansi_dark", background_color="default"))
        with VerticalScroll(id="attempt"):
            yield Static(Group(*body))
        yield Footer()
