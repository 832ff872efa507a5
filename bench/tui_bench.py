"""TUI figures: start to first dashboard, event-to-screen latency at 100 events/s, and the
history screen opening on 100,000 attempts.

    .venv/bin/python bench/tui_bench.py

The start-up is measured on the real `overseer tui` process in a real terminal (tmux), from
launch until the dashboard shows it is connected. The latency is measured in-process: events
are emitted from the daemon's worker thread (as a cycle emits them) and timed until the app has
handled them; progress events for one phase merge in the queue, so the count handled is less
than the count sent when the UI is busy — that is the point.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from overseer.daemon.server import DaemonOptions, run_daemon  # noqa: E402
from overseer.tui.app import OverseerApp  # noqa: E402
from overseer.vocabulary import ErrorRaised, PhaseProgress  # noqa: E402
from summary import record  # noqa: E402
from support.helpers import daemon_config, init_repo  # noqa: E402
from support.load import fill_history  # noqa: E402

RATE = 100
SECONDS = 5
ROWS = 100_000


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def startup(workdir: Path, sockdir: Path) -> float:
    repo = init_repo(workdir / "repo-start")
    sock = sockdir / "start.sock"
    config, _ = daemon_config(workdir, repo, sock)
    env = {**os.environ, "OVERSEER_SOCKET": str(sock)}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "overseer", "daemon", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    times = []
    server = ""
    try:
        while not sock.exists():
            time.sleep(0.05)
        for n in range(5):
            server = f"overseer-bench-{os.getpid()}-{n}"
            subprocess.run(
                [
                    "tmux",
                    "-L",
                    server,
                    "-f",
                    "/dev/null",
                    "new-session",
                    "-d",
                    "-s",
                    "b",
                    "-x",
                    "120",
                    "-y",
                    "36",
                    "sleep 60",
                ],
                check=True,
            )
            started = time.monotonic()
            subprocess.run(
                [
                    "tmux",
                    "-L",
                    server,
                    "respawn-pane",
                    "-k",
                    "-t",
                    "b",
                    f"{sys.executable} -m overseer tui --socket {sock}",
                ],
                check=True,
            )
            while True:
                shown = subprocess.run(
                    ["tmux", "-L", server, "capture-pane", "-p", "-t", "b"],
                    capture_output=True,
                    text=True,
                ).stdout
                if "● connected" in shown and "Changes" in shown:
                    break
                time.sleep(0.01)
            times.append(time.monotonic() - started)
            subprocess.run(["tmux", "-L", server, "kill-server"], capture_output=True)
    finally:
        if server:
            subprocess.run(["tmux", "-L", server, "kill-server"], capture_output=True)
        daemon.terminate()
        daemon.wait(30)
    return statistics.median(times) * 1000


class TimedApp(OverseerApp):
    """The real app, noting when each benchmark event has been handled."""

    def __init__(self, *args, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kw)
        self.latencies: list[float] = []
        self.progress_handled = 0

    def on_phase_progressed(self, message) -> None:  # type: ignore[no-untyped-def]
        super().on_phase_progressed(message)
        self.progress_handled += 1
        self.latencies.append(time.monotonic() - float(message.event["message"]))

    def on_event_logged(self, message) -> None:  # type: ignore[no-untyped-def]
        super().on_event_logged(message)
        if message.event["kind"] == "ErrorRaised" and message.event["where"] == "bench":
            self.latencies.append(time.monotonic() - float(message.event["message"]))


async def latency(workdir: Path, sockdir: Path) -> dict[str, float]:
    repo = init_repo(workdir / "repo-latency")
    path, config = daemon_config(workdir, repo, sockdir / "lat.sock")
    async with run_daemon(DaemonOptions(config=config, config_path=path)) as daemon:
        app = TimedApp(daemon.socket_path)
        async with app.run_test(size=(130, 40)) as pilot:
            while app.client is None:
                await pilot.pause(0.05)
            # A cycle in EVALUATE, so progress has a phase to show.
            bus = daemon.rt.bus
            from overseer.vocabulary import CycleStarted, PhaseStarted

            bus.emit(
                CycleStarted(
                    cycle_id="bench", target="proj", branch="main", dry_run=True, parameters={}
                )
            )
            bus.emit(PhaseStarted(cycle_id="bench", improvement_id="b", phase="EVALUATE"))
            sent = {"progress": 0, "log": 0}

            def emit() -> None:
                for n in range(RATE * SECONDS):
                    stamp = repr(time.monotonic())
                    if n % 2:
                        bus.emit(
                            PhaseProgress(
                                cycle_id="bench",
                                improvement_id="b",
                                phase="EVALUATE",
                                message=stamp,
                                done=n,
                                total=RATE * SECONDS,
                            )
                        )
                        sent["progress"] += 1
                    else:
                        bus.emit(ErrorRaised(where="bench", message=stamp))
                        sent["log"] += 1
                    time.sleep(1 / RATE)

            thread = threading.Thread(target=emit)
            thread.start()
            while thread.is_alive():
                await pilot.pause(0.05)
            await pilot.pause(0.5)
    ms = [x * 1000 for x in app.latencies]
    return {
        "p50": statistics.median(ms),
        "p99": percentile(ms, 99),
        "progress_sent": sent["progress"],
        "progress_drawn": app.progress_handled,
    }


async def history(workdir: Path, sockdir: Path) -> float:
    repo = init_repo(workdir / "repo-history")
    path, config = daemon_config(workdir, repo, sockdir / "hist.sock")
    fill_history(Path(config.state_dir), ROWS)
    async with run_daemon(DaemonOptions(config=config, config_path=path)) as daemon:
        app = OverseerApp(daemon.socket_path)
        async with app.run_test(size=(130, 40)) as pilot:
            while app.client is None:
                await pilot.pause(0.05)
            started = time.monotonic()
            await pilot.press("h")
            while not (
                app.screen.__class__.__name__ == "HistoryScreen" and app.screen.total_rows == ROWS
            ):
                await pilot.pause(0.005)
            return (time.monotonic() - started) * 1000


def main() -> None:
    os.environ.setdefault("GIT_CONFIG_GLOBAL", "/dev/null")
    workdir = Path(tempfile.mkdtemp(prefix="overseer-bench-"))
    sockdir = Path(tempfile.mkdtemp(prefix="ovb", dir="/tmp"))
    try:
        rows = []
        if shutil.which("tmux"):
            started = startup(workdir, sockdir)
            rows.append(
                (
                    "`overseer tui` start to connected dashboard (median of 5)",
                    f"{started:.0f} ms",
                    "",
                )
            )
            record("`overseer tui` start to dashboard", f"{started:.0f} ms")
        lat = asyncio.run(latency(workdir, sockdir))
        record(
            f"event → screen at {RATE} events/s",
            f"p50 {lat['p50']:.0f} ms · p99 {lat['p99']:.0f} ms",
        )
        rows.append(
            (
                f"event → handled by the app at {RATE} events/s",
                f"p50 {lat['p50']:.1f} ms · p99 {lat['p99']:.1f} ms",
                "",
            )
        )
        rows.append(
            (
                "progress messages sent / drawn (merged in the queue)",
                f"{lat['progress_sent']} / {lat['progress_drawn']}",
                "",
            )
        )
        opened = asyncio.run(history(workdir, sockdir))
        rows.append(
            (f"history screen on {ROWS:,} attempts, first page shown", f"{opened:.0f} ms", "")
        )
        record(f"history screen, {ROWS:,} rows", f"{opened:.0f} ms")
        width = max(len(r[0]) for r in rows)
        print(f"{'measure':<{width}}  figure")
        for name, figure, _ in rows:
            print(f"{name:<{width}}  {figure}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(sockdir, ignore_errors=True)


if __name__ == "__main__":
    main()
