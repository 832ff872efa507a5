"""Stopping a cycle from outside its thread: after the current phase, or right now.

The daemon's shutdown first asks for a graceful stop (the running phase finishes, then the
attempt is closed as interrupted at the next checkpoint); if the phase takes longer than the
grace period, or a second signal arrives, it cancels: the running command's process group is
killed and the attempt is closed as interrupted in the phase it was in.
"""

from __future__ import annotations

import threading


class CycleStopped(BaseException):
    """Raised inside the cycle when it was asked to stop. A BaseException, like
    KeyboardInterrupt, so that no `except Exception` on the way swallows it."""


class StopToken:
    def __init__(self) -> None:
        self._graceful = threading.Event()
        self.cancelled = threading.Event()  # sandbox commands watch this one
        self.reason = "stop requested"

    def request_stop(self, reason: str = "stop requested") -> None:
        self.reason = reason
        self._graceful.set()

    def cancel(self, reason: str = "cancelled") -> None:
        self.reason = reason
        self._graceful.set()
        self.cancelled.set()

    @property
    def stopping(self) -> bool:
        return self._graceful.is_set()

    def checkpoint(self, before: str) -> None:
        if self._graceful.is_set():
            raise CycleStopped(f"{self.reason}, before {before}")

    def reset(self) -> None:
        self._graceful.clear()
        self.cancelled.clear()
