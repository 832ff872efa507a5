"""Driving the real Textual app under Pilot: what a widget shows, waiting for the screen."""

from __future__ import annotations

import time

from textual.geometry import Region

from overseer.tui.app import OverseerApp

SIZE = (130, 40)


def text_of(widget) -> str:
    """What the widget shows on screen, as plain text."""
    strips = widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))
    return "\n".join(strip.text for strip in strips)


async def until(pilot, check, seconds: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


def app_for(daemon) -> OverseerApp:
    return OverseerApp(daemon.socket_path, backoff=(0.2, 0.5))


async def connected(pilot) -> None:
    await until(pilot, lambda: pilot.app.client is not None and pilot.app.status, what="connected")
