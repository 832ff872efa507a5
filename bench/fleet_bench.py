"""Many targets in one daemon: cycles one at a time against two at once (issue 16).

    .venv/bin/python bench/fleet_bench.py [N ...]

N small real repositories (8 and 20 by default) made in a temporary directory, each with one
lint finding (F401) in code of its own and a test suite that takes about TEST_SECONDS (it sleeps: test-bound, as
most targets' suites are on a machine with spare cores). The real daemon, as a process, runs
one cycle on each (a run-now) with `daemon.max_parallel_cycles` 1, then 2, on fresh copies.

Figures: the throughput ratio (cycles per second at 2 over at 1; goal at least 1.7); with 2,
the time from `approve` to `ChangePromoted` for changes approved while other targets' tests
run (goal under 2 s); the p99 latency of events to a subscriber; the daemon's peak RSS.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from overseer.client import Client  # noqa: E402
from summary import record  # noqa: E402
from support.daemons import DaemonProcess  # noqa: E402
from support.helpers import PYPROJECT, daemon_config, init_repo  # noqa: E402

TEST_SECONDS = 1.5
APPROVALS = 5  # at most, with 2 cycles at once, each while other targets' cycles run
FILES = {
    "pyproject.toml": PYPROJECT,
    ".gitignore": "__pycache__/\n",
    "pkg/__init__.py": "",
    "pkg/util.py": "import json\n\n\ndef double(x):\n    return x * 2\n",
    "tests/test_util.py": (
        "import time\n\nfrom pkg.util import double\n\n\n"
        f"def test_double():\n    time.sleep({TEST_SECONDS})\n    assert double(2) == 4\n"
    ),
}


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def fleet(root: Path, n: int) -> list[dict[str, Any]]:
    targets = []
    for i in range(n):
        repo = root / f"t{i:02d}"
        # Code of its own: the same file in two targets is the same finding on the same code
        # to the history, and the second would be skipped as already tried.
        own = {**FILES, "pkg/util.py": f"# {repo.name}\n" + FILES["pkg/util.py"]}
        init_repo(repo, own)
        targets.append(
            {
                "name": repo.name,
                "path": str(repo),
                "ruff_select": ["F401"],
                "watch_after_promotion": False,
                # A test this slow is the suite, not a finding to profile and speed up.
                "slow_test_seconds": 60,
            }
        )
    return targets


async def one_run(workdir: Path, sockdir: Path, n: int, parallel: int) -> dict[str, Any]:
    """One cycle on each of n targets at `parallel` at once: the figures of that run."""
    root = workdir / f"n{n}-p{parallel}"
    targets = fleet(root, n)
    socket = sockdir / f"n{n}p{parallel}.sock"
    config, _ = daemon_config(
        root,
        Path(targets[0]["path"]),
        socket,
        daemon={"max_parallel_cycles": parallel, "max_test_runs": 2, "shutdown_grace": 30},
        targets=targets,
    )
    daemon = DaemonProcess(config, socket, log=root / "daemon.log").wait_ready()
    result: dict[str, Any] = {"latencies": [], "approve": [], "rss_kb": daemon.rss_kb()}
    try:
        async with Client(socket, name="fleet-bench") as client:
            await client.request("subscribe")
            started = time.monotonic()
            await client.request("run_now")
            finished: set[str] = set()
            running: set[str] = set()
            requested: dict[str, str] = {}  # target → its attempt awaiting approval
            sent: dict[str, float] = {}  # attempt → when its approval was sent
            tasks = []
            async for event in client.events():
                received = time.time()
                if event.get("at"):
                    at = datetime.fromisoformat(event["at"]).timestamp()
                    result["latencies"].append(received - at)
                kind = event["kind"]
                if kind == "CycleStarted":
                    running.add(event["target"])
                elif kind == "ApprovalRequested":
                    requested[event["target"]] = event["improvement_id"]
                elif kind == "ChangePromoted" and event["improvement_id"] in sent:
                    result["approve"].append(time.monotonic() - sent.pop(event["improvement_id"]))
                elif kind == "CycleFinished":
                    target = event["target"]
                    running.discard(target)
                    finished.add(target)
                    result["rss_kb"] = max(result["rss_kb"], daemon.rss_kb())
                    others_testing = bool(running)
                    iid = requested.pop(target, None)
                    if (
                        parallel > 1
                        and iid
                        and others_testing
                        and len(sent) + len(result["approve"]) < APPROVALS
                    ):
                        sent[iid] = time.monotonic()
                        tasks.append(
                            asyncio.create_task(client.request("approve", id=iid, reason="bench"))
                        )
                    if len(finished) == n:
                        result["seconds"] = time.monotonic() - started
                        if not sent:
                            break
                if len(finished) == n and not sent:
                    break
            await asyncio.gather(*tasks)
    finally:
        assert daemon.stop(seconds=120) == 0, daemon.output()[-2000:]
    return result


async def main(sizes: list[int]) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="overseer-fleet-"))
    sockdir = Path(tempfile.mkdtemp(prefix="ovf", dir="/tmp"))
    try:
        print(f"targets whose tests take {TEST_SECONDS:g} s (sleeping); one cycle each")
        for n in sizes:
            one = await one_run(workdir, sockdir, n, 1)
            two = await one_run(workdir, sockdir, n, 2)
            ratio = one["seconds"] / two["seconds"]
            print(
                f"N={n:>2}: 1 at once {one['seconds']:.1f} s ({n / one['seconds']:.2f} cycles/s), "
                f"2 at once {two['seconds']:.1f} s ({n / two['seconds']:.2f} cycles/s): "
                f"throughput ×{ratio:.2f}"
            )
            record(
                f"throughput ×, 2 cycles at once vs 1 (N={n})",
                f"{ratio:.2f}",
                "≥ 1.7",
                ratio >= 1.7,
            )
            approve = two["approve"]
            if approve:
                print(
                    f"      approve → promoted while others' tests run: median "
                    f"{statistics.median(approve) * 1000:.0f} ms, max {max(approve) * 1000:.0f} ms "
                    f"({len(approve)} approvals)"
                )
                record(
                    f"approve → promoted, others testing (N={n}), max",
                    f"{max(approve) * 1000:.0f} ms",
                    "< 2 s",
                    max(approve) < 2.0,
                )
            p99 = percentile(two["latencies"], 99) * 1000
            print(
                f"      events: p99 {p99:.1f} ms over {len(two['latencies'])}; daemon RSS peak "
                f"{two['rss_kb'] / 1024:.0f} MB (1 at once: {one['rss_kb'] / 1024:.0f} MB)"
            )
            record(f"event latency p99, 2 at once (N={n})", f"{p99:.1f} ms")
            record(f"daemon RSS peak (N={n})", f"{two['rss_kb'] / 1024:.0f} MB")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(sockdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main([int(a) for a in sys.argv[1:]] or [8, 20]))
