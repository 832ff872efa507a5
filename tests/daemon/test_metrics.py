"""Metrics (issue 16): the daemon's opt-in listener, scraped over HTTP after a real cycle, parses
as the Prometheus text format and its numbers are the history's and the status's."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from overseer.client import Client
from overseer.daemon.server import run_daemon
from support.helpers import next_event, rows


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found.setdefault(s.name, []).append((s.labels, s.value))
    return found


def scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=30) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain")
        return answer.read().decode()


@pytest.mark.usefixtures("warm_baseline")
async def test_a_scrape_after_a_real_cycle_matches_the_history_and_the_status(
    tmp_path, daemon_options
):
    async with run_daemon(daemon_options(metrics={"listen": "127.0.0.1:0"})) as daemon:
        assert daemon.metrics_server is not None
        address = daemon.metrics_server.address
        async with Client(daemon.socket_path) as client:
            await client.request("subscribe")
            await client.request("run_now")
            await next_event(client, "ApprovalRequested")
            await next_event(client, "CycleFinished")
            status = await client.request("status")
            found = samples(await asyncio.to_thread(scrape, address))

    attempts = rows(tmp_path / "state", "improvements")
    counted = {
        (labels["status"], labels["kind"], labels["generator"]): value
        for labels, value in found["overseer_attempts"]
    }
    expected: dict[tuple[str, str, str], float] = {}
    for a in attempts:
        key = (a["status"], a["finding_kind"] or "", a["generator"] or "")
        expected[key] = expected.get(key, 0) + 1
    assert counted == expected and sum(counted.values()) >= 1
    [(_, pending)] = found["overseer_pending_approvals"]
    assert pending == len(status["pending_approvals"]) == 1
    [(labels, count)] = found["overseer_cycle_duration_seconds_count"]
    assert labels == {"target": "proj"} and count == 1
    phases = {labels["phase"]: v for labels, v in found["overseer_phase_duration_seconds_count"]}
    assert phases["ANALYZE"] >= 1 and phases["EVALUATE"] >= 1
    [(labels, since)] = found["overseer_seconds_since_last_successful_cycle"]
    assert labels == {"target": "proj"} and since >= 0
    assert found["overseer_circuit_breaker_tripped"] == [({}, 0.0)]
    assert found["overseer_events_dropped_total"][0][1] >= 0


async def test_the_listener_may_be_a_unix_socket(tmp_path, sockdir, daemon_options):
    import http.client
    import socket

    path = sockdir / "metrics.sock"
    async with run_daemon(daemon_options(metrics={"listen": str(path)})):

        def get() -> str:
            conn = http.client.HTTPConnection("localhost", timeout=30)
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(path))
            conn.sock = sock
            conn.request("GET", "/metrics")
            return conn.getresponse().read().decode()

        found = samples(await asyncio.to_thread(get))
        assert found["overseer_pending_approvals"] == [({}, 0.0)]
    assert not path.exists()
