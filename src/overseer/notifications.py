"""Notifications to someone who is not watching, through Apprise (config `notify`).

The bus hands every event to `Notifications.__call__`, on whatever thread emitted it: that only
decides (is a receiver interested, was the same thing said within its window, is it over its
hourly limit) and puts a message on a queue. One background thread sends, each send within the
receiver's time limit; a send that fails is tried again later, waiting twice as long each time.
So a receiver that hangs or refuses never blocks or fails a cycle; it shows in `status`.

Messages are redacted again on the way out (the bus already redacted the events' fields), and
the URLs shown in a status are Apprise's own masked form, without credentials.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from overseer.config import NotifyReceiver
from overseer.core.plumbing import secrets
from overseer.vocabulary import (
    ApprovalRequested,
    ChangePromoted,
    ChangeRolledBack,
    CircuitBreakerTripped,
    DaemonStopping,
    Event,
    NotificationStatus,
    RegressionFound,
    TargetUnhealthy,
)

if TYPE_CHECKING:
    from apprise.plugins.base import NotifyBase

log = logging.getLogger(__name__)

#: messages waiting per receiver, beyond which new ones are dropped (and counted)
MAX_QUEUED = 100


def subject(event: Event) -> str:
    """What the event is about, for deduplication: the attempt, else the target, else its kind."""
    for name in ("improvement_id", "target", "reason"):
        value = getattr(event, name, None)
        if value:
            return str(value)
    return ""


def message(event: Event) -> tuple[str, str]:
    """The title and body of an event's notification: what happened, and what to type."""
    iid = event.short_id
    if isinstance(event, ApprovalRequested):
        title = f"overseer: {iid} on {event.target} awaits your approval"
        what = f"{event.change_type or 'a change'} in {event.target_file or '?'}"
        reasons = "".join(f"\n- {r}" for r in event.reasons)
        body = (
            f"{what} ({event.risk_level or '?'} risk) waits for a decision.{reasons}\n\n"
            f"See it: overseer show {iid}\nApprove: overseer approve {iid}\n"
            f"Reject: overseer reject {iid} --reason '…'"
        )
    elif isinstance(event, ChangePromoted):
        title = f"overseer: {iid} promoted on {event.target}"
        body = (
            f"{iid} is on {event.branch} as {event.commit[:7]}.\n\n"
            f"Undo it: overseer rollback {iid} --reason '…'"
        )
    elif isinstance(event, ChangeRolledBack):
        title = f"overseer: {iid} rolled back"
        body = (
            f"{iid} was rolled back by {event.user} (revert {event.revert_commit[:7]}): "
            f"{event.reason}\n\nSee it: overseer show {iid}"
        )
    elif isinstance(event, RegressionFound):
        if event.action == "reverted":
            title = f"overseer: {iid} regressed and was reverted"
            body = f"{event.reason}\n\nSee it: overseer show {iid}"
        else:
            title = f"overseer: {iid} regressed, a human must act"
            body = (
                f"{event.reason}; NOT reverted: {event.detail}\n\n"
                f"See it: overseer show {iid}\nRevert it: overseer rollback {iid} --reason '…'"
            )
    elif isinstance(event, CircuitBreakerTripped):
        title = f"overseer: circuit breaker tripped on {event.target}"
        body = f"{event.reason}\n\nSee why: overseer status; overseer history"
    elif isinstance(event, TargetUnhealthy):
        title = f"overseer: target {event.target} cannot be used"
        body = f"{event.reason}; no cycle runs on it until it can.\n\nSee it: overseer status"
    elif isinstance(event, DaemonStopping):
        title = "overseer: the daemon is stopping"
        body = f"{event.reason}\n\nNo cycle runs until it is started again."
    else:
        line = (event.describe() or event.kind).strip()
        title = f"overseer: {line.splitlines()[0][:120]}"
        body = line
    return title, body


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    receiver: _Receiver = field(compare=False)
    title: str = field(compare=False)
    body: str = field(compare=False)
    tries: int = field(default=0, compare=False)


class _Receiver:
    def __init__(self, config: NotifyReceiver) -> None:
        import apprise  # only when notifications are configured

        self.config = config
        self.events = set(config.events)
        plugin = apprise.Apprise.instantiate(config.url)
        if plugin is None:  # the configuration checked it; a plugin that went away since
            raise ValueError(f"Apprise does not understand {config.url.split('://')[0]}://")
        plugin.socket_connect_timeout = config.timeout
        plugin.socket_read_timeout = config.timeout
        self.plugin: NotifyBase = plugin
        self.shown = _masked(plugin)
        self.ok = True
        self.last_error: str | None = None
        self.failures = 0
        self.sent = 0
        self.dropped = 0
        self.pending = 0
        self.recent: dict[tuple[str, str], float] = {}  # (kind, subject) → when it was queued
        self.hour: deque[float] = deque()  # when each message of the last hour was queued

    def admit(self, kind: str, about: str, now: float) -> bool:
        """Whether a message about this goes out: not said within the window, not over the
        hourly limit, not too many waiting."""
        window = self.config.dedupe_window
        self.recent = {k: t for k, t in self.recent.items() if now - t < window}
        if (kind, about) in self.recent:
            return False
        while self.hour and now - self.hour[0] >= 3600:
            self.hour.popleft()
        if len(self.hour) >= self.config.max_per_hour or self.pending >= MAX_QUEUED:
            self.dropped += 1
            return False
        self.recent[(kind, about)] = now
        self.hour.append(now)
        return True

    def status(self) -> NotificationStatus:
        return {
            "url": self.shown,
            "ok": self.ok,
            "last_error": self.last_error,
            "failures": self.failures,
            "sent": self.sent,
            "dropped": self.dropped,
            "pending": self.pending,
        }


def _masked(plugin: Any) -> str:
    try:
        return str(plugin.url(privacy=True)).split("?", 1)[0]
    except Exception:
        return f"{getattr(plugin, 'protocol', None) or '?'}://…"


class Notifications:
    """The receivers of `notify`, and the thread that sends to them. Subscribe it to the bus."""

    def __init__(
        self,
        receivers: list[NotifyReceiver],
        *,
        on_failure: Callable[[str], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.receivers = [_Receiver(r) for r in receivers]
        self.on_failure = on_failure  # told the masked URL of each failed send (metrics)
        self.monotonic = monotonic
        self._due: list[_Due] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closing = False
        self._sending = 0
        self._thread: threading.Thread | None = None

    @classmethod
    def create(cls, receivers: list[NotifyReceiver], **kwargs: Any) -> Notifications | None:
        """None when nothing is configured (and Apprise is never imported)."""
        return cls(receivers, **kwargs) if receivers else None

    def start(self) -> Notifications:
        self._thread = threading.Thread(target=self._run, name="overseer-notify", daemon=True)
        self._thread.start()
        return self

    def __call__(self, event: Event) -> None:
        """From the bus: queue what the receivers want to hear. Never blocks on a send."""
        interested = [r for r in self.receivers if event.kind in r.events]
        if not interested:
            return
        title, body = message(event)
        redactor = secrets.active()
        title, body = redactor.text(title), redactor.text(body)
        about = subject(event)
        with self._cond:
            now = self.monotonic()
            for receiver in interested:
                if receiver.admit(event.kind, about, now):
                    receiver.pending += 1
                    heapq.heappush(self._due, _Due(now, next(self._seq), receiver, title, body))
            self._cond.notify()

    def status(self) -> list[NotificationStatus]:
        with self._cond:
            return [r.status() for r in self.receivers]

    @property
    def failures(self) -> int:
        return sum(r.failures for r in self.receivers)

    def close(self, timeout: float) -> bool:
        """Send what is due within `timeout` seconds (retries only if they fall within it),
        then stop. True when nothing was left unsent."""
        deadline = self.monotonic() + timeout
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            while (self._due and self._due[0].at <= deadline) or self._sending:
                left = deadline - self.monotonic()
                if left <= 0 or self._thread is None or not self._thread.is_alive():
                    break
                self._cond.wait(min(left, 0.1))
            left_over = len(self._due) + self._sending
            for due in self._due:
                due.receiver.pending -= 1
                due.receiver.dropped += 1
            self._due.clear()
            self._cond.notify_all()
        if left_over:
            log.warning("%d notification(s) not sent before stopping", left_over)
        return not left_over

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closing and not self._due:
                        return
                    now = self.monotonic()
                    if self._due and self._due[0].at <= now:
                        due = heapq.heappop(self._due)
                        self._sending += 1
                        break
                    wait = self._due[0].at - now if self._due else None
                    self._cond.wait(wait if wait is None else min(wait, 1.0))
            try:
                self._send(due)
            finally:
                with self._cond:
                    self._sending -= 1
                    self._cond.notify_all()

    def _send(self, due: _Due) -> None:
        receiver = due.receiver
        error = None
        try:
            import apprise

            with apprise.LogCapture(level=logging.WARNING) as captured:
                ok = bool(receiver.plugin.notify(body=due.body, title=due.title))
            if not ok:
                lines = [ln for ln in str(captured.getvalue()).splitlines() if ln.strip()]
                error = _tail(lines[-1]) if lines else "the receiver did not accept it"
        except Exception as exc:  # a plugin's bug must not stop the thread
            error = f"{type(exc).__name__}: {exc}"
        with self._cond:
            receiver.pending -= 1
            if error is None:
                receiver.ok, receiver.last_error = True, None
                receiver.sent += 1
                return
            error = secrets.active().text(error)
            receiver.ok, receiver.last_error = False, error
            receiver.failures += 1
            retrying = due.tries < receiver.config.retries
            if retrying:
                due.tries += 1
                due.at = self.monotonic() + receiver.config.retry_after * 2 ** (due.tries - 1)
                due.seq = next(self._seq)
                receiver.pending += 1
                heapq.heappush(self._due, due)
            else:
                receiver.dropped += 1
        log.warning(
            "notification to %s failed (%s)%s",
            receiver.shown,
            error,
            f"; trying again in {due.at - self.monotonic():.0f} s" if retrying else "; given up",
        )
        if self.on_failure is not None:
            self.on_failure(receiver.shown)


def _tail(line: str) -> str:
    """An Apprise log line without its time and level."""
    return line.split(" - ", 2)[-1].strip()[:300]
