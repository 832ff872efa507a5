"""Load figures: a cycle's time with and without 50 subscribers and a steady `status` stream,
event latency under that load, the daemon's memory.

    .venv/bin/python bench/load_bench.py [--cycles 10]

Target (issue 8): the load slows a cycle by at most 5 % (loaded / quiet ≤ 1.05). One daemon
process runs dry-run cycles with the ruff fixer on a small repository with one finding per
module, so every cycle does the same work (tests/support/load.py). Cycles alternate quiet
and loaded (ABBA, so a drift favours neither): quiet, only the client that starts them is
subscribed;
loaded, 50 more subscribers connect and `status` is asked 20 times a second on another
connection, from before the cycle starts until it ends. Cycle time is the daemon's own, from
its CycleStarted to its CycleFinished. Latency is arrival at a subscriber minus the event's
time, which events carry to the millisecond. The subscribers and the status stream run in
this process, so they share the machine's cores with the daemon and the cycle's commands.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from summary import record  # noqa: E402
from support.daemons import DaemonProcess  # noqa: E402
from support.load import (  # noqa: E402
    STATUS_RATE,
    SUBSCRIBERS,
    StatusStream,
    Subscriber,
    cycle_seconds,
    findings_repo,
    load_config,
    percentile,
    run_now,
    wait_idle,
)

WARM_UP = 2  # the first cycle runs the baseline tests; the second settles the caches
TARGET = 1.05


async def one_cycle(daemon: DaemonProcess, control: Subscriber, loaded: bool) -> dict:
    """Run one cycle, with or without the load; its time and what the load saw."""
    sock = control.client.socket_path
    subscribers: list[Subscriber] = []
    stream = None
    if loaded:
        subscribers = [Subscriber(sock) for _ in range(SUBSCRIBERS)]
        await asyncio.gather(*(s.start() for s in subscribers))
        stream = StatusStream(sock)
        await stream.start()
    done = sum(1 for e in control.events if e["kind"] == "CycleFinished")
    cpu = daemon.cpu_seconds()
    await run_now(control.client)
    await control.wait_for("CycleFinished", done + 1, timeout=300)
    cpu = daemon.cpu_seconds() - cpu
    finished = [e for e in control.events if e["kind"] == "CycleFinished"][-1]
    cycle = finished["cycle_id"]
    result = {
        "seconds": cycle_seconds(control.events)[cycle],
        "cpu": cpu,
        "latencies": [],
        "lost": 0,
    }
    if stream is not None:
        await stream.stop()
        result["status"] = (stream.sent, len(stream.answers), stream.seconds, stream.failures)
    wanted = [e for e in control.events if e.get("cycle_id") == cycle]
    for s in subscribers:
        await s.wait_for("CycleFinished", timeout=60)
        got = [e for e in s.events if e.get("cycle_id") == cycle]
        result["lost"] += len(wanted) - len(got) if got == wanted[: len(got)] else len(wanted)
        result["latencies"] += [
            ms for e, ms in zip(s.events, s.latencies_ms(), strict=True) if e.get("cycle_id")
        ]
        await s.close()
    await wait_idle(control.client)
    return result


async def measure(cycles: int, workdir: Path, sockdir: Path) -> dict:
    repo = findings_repo(workdir / "proj", modules=WARM_UP + 2 * cycles + 2)
    sock = sockdir / "s.sock"
    daemon = DaemonProcess(
        load_config(workdir, repo, sock), sock, log=workdir / "daemon.log", direct=True
    )
    try:
        await asyncio.to_thread(daemon.wait_ready)
        control = Subscriber(sock)
        await control.start()
        for _ in range(WARM_UP):
            await one_cycle(daemon, control, loaded=False)
        rss_before = daemon.rss_kb()
        runs: dict[bool, list[dict]] = {False: [], True: []}
        for n in range(cycles):
            order = (False, True) if n % 2 == 0 else (True, False)
            for loaded in order:
                runs[loaded].append(await one_cycle(daemon, control, loaded))
                kind = "loaded" if loaded else "quiet"
                print(
                    f"  cycle {2 * n + 1 + order.index(loaded):2d} {kind:<6} "
                    f"{runs[loaded][-1]['seconds'] * 1000:6.0f} ms, daemon CPU "
                    f"{runs[loaded][-1]['cpu'] * 1000:4.0f} ms",
                    flush=True,
                )
        rss_after = daemon.rss_kb()
        await control.close()
    finally:
        code = daemon.stop()
    if code != 0:
        raise SystemExit(f"the daemon exited with {code}: {daemon.log.read_text()[-2000:]}")
    return {"runs": runs, "rss": (rss_before, rss_after)}


def report(cycles: int, figures: dict) -> None:
    quiet = [r["seconds"] * 1000 for r in figures["runs"][False]]
    loaded_runs = figures["runs"][True]
    loaded = [r["seconds"] * 1000 for r in loaded_runs]
    ratio = statistics.median(loaded) / statistics.median(quiet)
    paired = statistics.median(b / a for a, b in zip(quiet, loaded, strict=True))
    latencies = [ms for r in loaded_runs for ms in r["latencies"]]
    sent = sum(r["status"][0] for r in loaded_runs)
    answered = sum(r["status"][1] for r in loaded_runs)
    status_ms = [s * 1000 for r in loaded_runs for s in r["status"][2]]
    failures = [f for r in loaded_runs for f in r["status"][3]]
    lost = sum(r["lost"] for r in loaded_runs)
    cpu_quiet = statistics.median(r["cpu"] * 1000 for r in figures["runs"][False])
    cpu_loaded = statistics.median(r["cpu"] * 1000 for r in loaded_runs)
    before, after = (kb / 1024 for kb in figures["rss"])
    rows = [
        (
            f"cycle, quiet (median of {cycles})",
            f"{statistics.median(quiet):.0f} ms (range {min(quiet):.0f}–{max(quiet):.0f})",
            "",
        ),
        (
            f"cycle, loaded (median of {cycles})",
            f"{statistics.median(loaded):.0f} ms (range {min(loaded):.0f}–{max(loaded):.0f})",
            "",
        ),
        (
            "slowdown, loaded / quiet",
            f"{ratio:.3f} (paired median {paired:.3f})",
            f"≤ {TARGET:.2f}  target {'met' if ratio <= TARGET else 'missed'}",
        ),
        (
            "daemon's own CPU per cycle",
            f"quiet {cpu_quiet:.0f} ms · loaded {cpu_loaded:.0f} ms",
            "medians; the cycle's commands not counted",
        ),
        (
            "event latency under load",
            f"p50 {percentile(latencies, 50):.1f} ms · p99 {percentile(latencies, 99):.1f} ms",
            f"{len(latencies)} deliveries, ±1 ms",
        ),
        ("events lost by subscribers", str(lost), "0"),
        (
            "status under load",
            f"p50 {percentile(status_ms, 50):.0f} ms · p99 {percentile(status_ms, 99):.0f} ms",
            f"{answered}/{sent} answered",
        ),
        ("daemon RSS, after warm-up → end", f"{before:.1f} → {after:.1f} MB", ""),
    ]
    record(
        "cycle slowdown under load",
        f"{ratio:.3f} (paired {paired:.3f}; cycles {min(quiet):.0f}–{max(quiet):.0f} ms quiet)",
        f"≤ {TARGET:.2f}",
        ratio <= TARGET,
    )
    record("daemon CPU per cycle, quiet → loaded", f"{cpu_quiet:.0f} → {cpu_loaded:.0f} ms")
    record("events lost by healthy subscribers", str(lost), "0", lost == 0)
    record("daemon RSS under load", f"{before:.1f} → {after:.1f} MB")
    width = max(len(r[0]) for r in rows)
    print()
    print(
        f"load: {SUBSCRIBERS} subscribers + status {STATUS_RATE:.0f}/s; "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"{'measure':<{width}}  {'figure':<36} target")
    for name, figure, target in rows:
        print(f"{name:<{width}}  {figure:<36} {target}")
    if failures:
        print(f"status failures: {failures[:3]}")
    if failures or lost or answered != sent:
        raise SystemExit("errors under load (see above)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10, help="cycles each way (default 10)")
    cycles = parser.parse_args().cycles
    os.environ.setdefault("GIT_CONFIG_GLOBAL", "/dev/null")
    # The target's tests run with this interpreter; its test-only plugins are not the target's.
    os.environ.setdefault("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    workdir = Path(tempfile.mkdtemp(prefix="overseer-load-"))
    sockdir = Path(tempfile.mkdtemp(prefix="ovl", dir="/tmp"))
    try:
        figures = asyncio.run(measure(cycles, workdir, sockdir))
        report(cycles, figures)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(sockdir, ignore_errors=True)


if __name__ == "__main__":
    main()
