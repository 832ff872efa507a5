"""Daemon figures: event latency to subscribers, idle footprint, `overseer status` time.

    .venv/bin/python bench/daemon_bench.py

Targets (issue 3): event p99 under 20 ms with 20 subscribers; idle RSS under 80 MB and ~0 %
CPU; `overseer status` under 300 ms. Events are emitted from a worker thread of a daemon in
this process, the way a cycle emits them; the subscribers are real socket clients in another
process; CLOCK_MONOTONIC is shared by both, so latency is receive time minus emit time.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from overseer.daemon.server import DaemonOptions, run_daemon  # noqa: E402
from overseer.vocabulary import ErrorRaised  # noqa: E402
from summary import record  # noqa: E402
from support.daemons import DaemonProcess  # noqa: E402
from support.helpers import daemon_config, init_repo  # noqa: E402

EVENTS = 1000
RATE = 200  # events per second, steady

SUBSCRIBERS = r"""
import asyncio, json, sys, time
from pathlib import Path
from overseer.client import Client

async def one(path, want, out):
    async with Client(Path(path), name="bench") as c:
        await c.request("subscribe")
        print("subscribed", flush=True)
        n = 0
        async for e in c.events():
            if e["kind"] == "ErrorRaised" and e["where"] == "bench":
                out.append(time.monotonic() - float(e["message"]))
                n += 1
                if n == want:
                    return

async def main(path, count, want):
    out = []
    await asyncio.gather(*(one(path, want, out) for _ in range(count)))
    print(json.dumps(out), flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def latency(subscribers: int, workdir: Path, sockdir: Path) -> tuple[float, float]:
    repo = init_repo(workdir / f"repo{subscribers}")
    path, config = daemon_config(workdir, repo, sockdir / f"s{subscribers}.sock")
    async with run_daemon(DaemonOptions(config=config, config_path=path)) as daemon:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SUBSCRIBERS,
            str(daemon.socket_path),
            str(subscribers),
            str(EVENTS),
            stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
        )
        assert proc.stdout is not None
        for _ in range(subscribers):
            await proc.stdout.readline()

        def emit() -> None:
            for _ in range(EVENTS):
                daemon.rt.bus.emit(ErrorRaised(where="bench", message=repr(time.monotonic())))
                time.sleep(1 / RATE)

        await asyncio.to_thread(emit)
        samples = json.loads(await proc.stdout.readline())
        await proc.wait()
    ms = [s * 1000 for s in samples]
    return statistics.median(ms), percentile(ms, 99)


def idle_and_status(workdir: Path, sockdir: Path) -> dict[str, float]:
    repo = init_repo(workdir / "repo-idle")
    sock = sockdir / "idle.sock"
    path, _ = daemon_config(workdir, repo, sock)
    env = {**os.environ, "OVERSEER_SOCKET": str(sock)}
    daemon = DaemonProcess(path, sock).wait_ready()
    try:
        time.sleep(2)  # let start-up settle
        t0, c0 = time.monotonic(), daemon.cpu_seconds()
        time.sleep(10)
        t1, c1 = time.monotonic(), daemon.cpu_seconds()
        rss_kb = daemon.rss_kb()
        timings = []
        for _ in range(10):
            started = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "overseer", "status"],
                env=env,
                capture_output=True,
                check=True,
            )
            timings.append(time.monotonic() - started)
        script = Path(sys.executable).parent / "overseer"
        script_timings = []
        for _ in range(10):
            started = time.monotonic()
            subprocess.run([str(script), "status"], env=env, capture_output=True, check=True)
            script_timings.append(time.monotonic() - started)
    finally:
        daemon.stop()
    return {
        "idle_rss_mb": rss_kb / 1024,
        "idle_cpu_percent": (c1 - c0) / (t1 - t0) * 100,
        "status_ms": statistics.median(script_timings) * 1000,
        "status_module_ms": statistics.median(timings) * 1000,
    }


def main() -> None:
    os.environ.setdefault("GIT_CONFIG_GLOBAL", "/dev/null")
    workdir = Path(tempfile.mkdtemp(prefix="overseer-bench-"))
    sockdir = Path(tempfile.mkdtemp(prefix="ovb", dir="/tmp"))
    try:
        rows = []
        for n in (1, 20):
            p50, p99 = asyncio.run(latency(n, workdir, sockdir))
            if n == 20:
                record("event p99, 20 subscribers", f"{p99:.1f} ms", "< 20 ms", p99 < 20)
            rows.append(
                (
                    f"event latency, {n} subscriber(s)",
                    f"p50 {p50:.2f} ms · p99 {p99:.2f} ms",
                    "p99 < 20 ms" if n == 20 else "",
                )
            )
        idle = idle_and_status(workdir, sockdir)
        rss, cpu, status = idle["idle_rss_mb"], idle["idle_cpu_percent"], idle["status_ms"]
        record("idle daemon RSS", f"{rss:.0f} MB", "< 80 MB", rss < 80)
        record("idle daemon CPU", f"{cpu:.2f} %", "~0 % (< 1 %)", cpu < 1)
        record("`overseer status`", f"{status:.0f} ms", "< 300 ms", status < 300)
        rows.append(("idle daemon RSS", f"{idle['idle_rss_mb']:.1f} MB", "< 80 MB"))
        rows.append(("idle daemon CPU (10 s)", f"{idle['idle_cpu_percent']:.2f} %", "~0 %"))
        rows.append(("`overseer status` (median of 10)", f"{idle['status_ms']:.0f} ms", "< 300 ms"))
        rows.append(("`python -m overseer status`", f"{idle['status_module_ms']:.0f} ms", ""))
        width = max(len(r[0]) for r in rows)
        print(f"{'measure':<{width}}  {'figure':<34} target")
        for name, figure, target in rows:
            print(f"{name:<{width}}  {figure:<34} {target}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(sockdir, ignore_errors=True)


if __name__ == "__main__":
    main()
