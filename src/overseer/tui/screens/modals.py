"""Dialogs: every decision is explained and asked for before it is sent; the legend."""

from __future__ import annotations

from typing import TypeVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from overseer.tui.legend import legend

Result = TypeVar("Result")


class Dialog(ModalScreen[Result]):
    """A modal dialog that no notification covers: it has no toast rack of its own, so the
    toasts of the moment show again on the screen below when it closes, and the app holds
    those that come meanwhile (OverseerApp.notify)."""

    def on_mount(self) -> None:
        self.query("#textual-toastrack").remove()


class DecisionScreen(Dialog[str | None]):
    """One decision: the text names exactly what will happen, and a reason goes with it.

    Dismissed with the reason ("" when none was given and none is needed), or None when the
    person cancelled. A rejection must say why (the reason is kept and shown next to similar
    changes later); an approval or a rollback may.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, body: str, confirm: str, *, reason_required: bool) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.confirm = confirm
        self.reason_required = reason_required

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.body, classes="dialog-body")
            yield Input(
                placeholder="reason (required)"
                if self.reason_required
                else "reason (optional), kept with the decision",
                id="reason",
            )
            yield Static("", id="reason-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.confirm} (enter)", variant="warning", id="send")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._send(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "send":
            self._send(self.query_one(Input).value)
        else:
            self.dismiss(None)

    def _send(self, value: str) -> None:
        if self.reason_required and not value.strip():
            self.query_one("#reason-error", Static).update(
                "A reason is needed: it is kept with the decision."
            )
            return
        self.dismiss(value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(Dialog[None]):
    """The keys, and what every column, mark and abbreviation on the dashboard means."""

    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="help"):
            yield Label(
                "overseer — keys and legend (↑ ↓ scroll, esc closes)", classes="dialog-title"
            )
            with VerticalScroll(id="legend"):
                yield Static(legend(), classes="dialog-body")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#legend").focus()

    def action_close(self) -> None:
        self.dismiss(None)
