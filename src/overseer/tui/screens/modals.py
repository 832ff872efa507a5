"""Confirmations: every decision is explained and asked for before it is sent."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no to one decision; the text names exactly what will happen."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("enter", "answer(True)", "Yes", show=False),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, title: str, body: str, confirm: str = "Yes") -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.confirm = confirm

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.body, classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.confirm} (y)", variant="warning", id="yes")
                yield Button("Cancel (n)", id="no")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class ReasonScreen(ModalScreen[str | None]):
    """Asks why (a rejection must say why: the reason is kept and shown next to similar ones)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, body: str, *, required: bool = True) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.required = required

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.body, classes="dialog-body")
            yield Input(
                placeholder="reason (required)" if self.required else "reason (optional)",
                id="reason",
            )
            yield Static("", id="reason-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Send (enter)", variant="warning", id="send")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._send(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "send":
            self._send(self.query_one(Input).value)
        else:
            self.dismiss(None)

    def _send(self, value: str) -> None:
        if self.required and not value.strip():
            self.query_one("#reason-error", Static).update(
                "A reason is needed: it is kept with the decision."
            )
            return
        self.dismiss(value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


HELP = """\
[b]a[/b]  approve the selected change (it is promoted to the target branch)
[b]r[/b]  reject the selected change (you are asked why; the reason is kept)
[b]R[/b]  roll back the selected promoted change (a revert commit; you confirm first)
[b]n[/b]  run a cycle now
[b]p[/b]  pause / resume: while paused no cycle starts and nothing is promoted
[b]h[/b]  history: every attempt, filterable; enter shows one attempt's provenance
[b]?[/b]  this help          [b]q[/b]  quit (the daemon keeps running)

Keys that do not apply right now are greyed out in the footer. The mouse works too.
Decisions are made by the daemon as your user; if you are not an approver, it says so."""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("overseer — keys", classes="dialog-title")
            yield Static(HELP, classes="dialog-body")

    def action_close(self) -> None:
        self.dismiss(None)

    def on_click(self, event: Any) -> None:
        self.dismiss(None)
