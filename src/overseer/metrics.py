"""Metrics in the Prometheus exposition format (prometheus-client), in a registry of our own.

What the history holds (attempts by status, finding kind and generator; pending approvals; the
breaker; when each target last had a successful cycle) is read from it at each scrape, so the
numbers are the history's and survive restarts. Durations are histograms fed by the bus
(PhaseFinished, and CycleStarted → CycleFinished). The daemon serves them on an opt-in listener
(config `metrics.listen`: host:port, or a Unix socket path); `run --once --metrics-file PATH`
writes them for node-exporter's textfile collector (a temporary file, then renamed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from overseer.vocabulary import Event, NotificationStatus

if TYPE_CHECKING:
    from overseer.application import Application

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CYCLE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, float("inf"))
PHASE_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, float("inf"))


class _FromHistory(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        app = self.metrics.app
        history = app.rt.history
        attempts = GaugeMetricFamily(
            "overseer_attempts",
            "Attempts in the history, by status, finding kind and generator",
            labels=["status", "kind", "generator"],
        )
        for row in history.query(
            "select status, coalesce(finding_kind, '') as kind, coalesce(generator, '') as gen, "
            "count(*) as n from improvements group by status, kind, gen"
        ):
            attempts.add_metric([row["status"], row["kind"], row["gen"]], row["n"])
        yield attempts
        pending = GaugeMetricFamily(
            "overseer_pending_approvals", "Changes waiting for a decision (status shows them)"
        )
        pending.add_metric([], len(app.pending()))
        yield pending
        paused = history.paused() or {}
        breaker = GaugeMetricFamily(
            "overseer_circuit_breaker_tripped",
            "1 while the circuit breaker holds overseer paused, else 0",
        )
        breaker.add_metric([], 1.0 if paused.get("breaker") else 0.0)
        yield breaker
        since = GaugeMetricFamily(
            "overseer_seconds_since_last_successful_cycle",
            "Seconds since the last cycle that ended ok, per target (absent: none yet)",
            labels=["target"],
        )
        now = app.rt.clock.now()
        for row in history.query(
            "select target, max(finished_at) as at from cycles where status = 'ok' "
            "and finished_at is not null group by target"
        ):
            at = datetime.fromisoformat(row["at"])
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
            since.add_metric([row["target"]], max(0.0, (now - at).total_seconds()))
        yield since
        dropped = CounterMetricFamily(
            "overseer_events_dropped",
            "Events not delivered to a client too slow to read them",
        )
        dropped.add_metric([], self.metrics.dropped())
        yield dropped
        failures = CounterMetricFamily(
            "overseer_notification_failures",
            "Notification sends that failed, retries included, by receiver (its masked URL)",
            labels=["receiver"],
        )
        for receiver in self.metrics.notifications():
            failures.add_metric([receiver["url"]], receiver["failures"])
        yield failures


class Metrics:
    """One registry of our own; subscribe it to the bus for the durations."""

    def __init__(
        self,
        app: Application,
        *,
        dropped: Callable[[], int] = lambda: 0,
        notifications: Callable[[], list[NotificationStatus]] = list,
    ) -> None:
        self.app = app
        self.dropped = dropped
        self.notifications = notifications
        self.registry = CollectorRegistry(auto_describe=False)
        self.cycle_seconds = Histogram(
            "overseer_cycle_duration_seconds",
            "How long cycles took, from start to finish",
            ["target"],
            buckets=CYCLE_BUCKETS,
            registry=self.registry,
        )
        self.phase_seconds = Histogram(
            "overseer_phase_duration_seconds",
            "How long phases took",
            ["phase"],
            buckets=PHASE_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_FromHistory(self))
        self._started: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        kind = event.kind
        if kind == "PhaseFinished":
            if getattr(event, "outcome", None) != "skipped":
                self.phase_seconds.labels(event.phase).observe(event.duration)  # type: ignore[attr-defined]
        elif kind == "CycleStarted" and event.at is not None:
            with self._lock:
                self._started[event.cycle_id] = event.at  # type: ignore[attr-defined]
        elif kind == "CycleFinished" and event.at is not None:
            with self._lock:
                started = self._started.pop(event.cycle_id, None)  # type: ignore[attr-defined]
            if started is not None:
                took = (event.at - started).total_seconds()
                self.cycle_seconds.labels(event.target).observe(max(0.0, took))  # type: ignore[attr-defined]

    def text(self) -> bytes:
        return generate_latest(self.registry)

    def write(self, path: Path) -> None:
        """For node-exporter's textfile collector: written whole, then renamed into place."""
        path = path.absolute()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(self.text())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with_suppressed_unlink(tmp)
            raise

    def serve(self, listen: str) -> MetricsServer:
        return MetricsServer(self, listen)


def with_suppressed_unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _handler(metrics: Metrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                body = metrics.text()
            except Exception as exc:  # a locked database: the scrape fails, the daemon does not
                log.warning("metrics scrape failed: %s", exc)
                self.send_error(503, "metrics unavailable")
                return
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

        def address_string(self) -> str:
            return (
                "unix" if isinstance(self.client_address, str | bytes) else super().address_string()
            )

    return Handler


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _HTTP6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class MetricsServer:
    """The opt-in listener: `host:port` (TCP) or a path (a Unix socket), in threads of its own."""

    def __init__(self, metrics: Metrics, listen: str) -> None:
        handler = _handler(metrics)
        self.path: Path | None = None
        server: socketserver.BaseServer
        if listen.startswith(("/", ".")):
            self.path = Path(listen)
            if self.path.is_socket():
                self.path.unlink()  # a stale one from a killed daemon
            server = _UnixHTTPServer(str(self.path), handler)
            self.address = str(self.path)
        else:
            host, _, port = listen.rpartition(":")
            host = host.strip("[]")
            tcp = _HTTP6Server if ":" in host else ThreadingHTTPServer
            server = tcp((host, int(port)), handler)
            bound = server.server_address
            self.address = f"{host}:{bound[1]}"
        self.server = server
        self.thread = threading.Thread(
            target=server.serve_forever, name="overseer-metrics", daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.path is not None:
            with_suppressed_unlink(str(self.path))
