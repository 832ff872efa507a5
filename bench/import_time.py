"""A light start: what each client command imports, and how long `overseer status` takes.

    .venv/bin/python bench/import_time.py [RUNS]

Against a daemon started for the purpose (in a child process, on a throw-away repository),
each client command is run RUNS times (default 7) with `python -X importtime`; the figure is
the median of the total import time (the sum of the top-level imports' cumulative times) and
the modules that cost most. Then the wall and CPU time of `overseer status` (the installed
script, as a person runs it), median of RUNS, against the daemon and with none. Target
(issue 18): `overseer status` against a daemon ≤ 120 ms.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from summary import record  # noqa: E402
from support.daemons import DaemonProcess  # noqa: E402
from support.helpers import daemon_config, init_repo  # noqa: E402

STATUS_TARGET_MS = 120
# The client commands: each talks to the daemon and should import only what it uses.
COMMANDS = [
    ["status"],
    ["status", "--json"],
    ["history", "--limit", "5"],
    ["show", "0000000000"],
    ["pause", "--reason", "bench"],
    ["resume"],
]
CPU = ("ru_utime", "ru_stime")
LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def imports(command: list[str], env: dict[str, str]) -> tuple[float, dict[str, float]]:
    """Total import time (ms) of one run, and each top-level import's cumulative ms."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "overseer", *command],
        env=env,
        capture_output=True,
        text=True,
    )
    top: dict[str, float] = {}
    for line in done.stderr.splitlines():
        match = LINE.match(line)
        if match and len(match.group(3)) == 1:  # one space: imported by no other module
            top[match.group(4)] = top.get(match.group(4), 0) + int(match.group(2)) / 1000
    return sum(top.values()), top


def timed(
    argv: list[str], env: dict[str, str], runs: int, expect: int
) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of each run: on a busy machine the CPU time says what the
    command costs, the wall time what a person waits."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        done = subprocess.run(argv, env=env, capture_output=True)
        walls.append((time.monotonic() - started) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(1000 * sum(getattr(after, f) - getattr(before, f) for f in CPU))
        if done.returncode != expect:
            raise SystemExit(f"{argv}: exit status {done.returncode}:\n{done.stderr}")
    return walls, cpus


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    os.environ.setdefault("GIT_CONFIG_GLOBAL", "/dev/null")
    workdir = Path(tempfile.mkdtemp(prefix="overseer-bench-"))
    sockdir = Path(tempfile.mkdtemp(prefix="ovb", dir="/tmp"))
    sock = sockdir / "import.sock"
    repo = init_repo(workdir / "repo")
    path, _ = daemon_config(workdir, repo, sock)
    # Compiled modules cached as an installed package has them (out of the source tree), not
    # compiled again on every start as with PYTHONDONTWRITEBYTECODE.
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        "PYTHONPYCACHEPREFIX": str(workdir / "pycache"),
        "OVERSEER_SOCKET": str(sock),
    }
    # (An empty PYTHONDONTWRITEBYTECODE is unset, for Python: DaemonProcess adds to the
    # environment, it does not take from it.)
    daemon = DaemonProcess(path, sock, env={**env, "PYTHONDONTWRITEBYTECODE": ""}).wait_ready()
    try:
        for command in COMMANDS:  # once, to compile what each command imports
            imports(command, env)
        print(f"{'command':<28} {'imports (median)':>17}  heaviest top-level imports")
        for command in COMMANDS:
            totals, heavy = [], {}
            for _ in range(runs):
                total, top = imports(command, env)
                totals.append(total)
                heavy = top
            worst = sorted(heavy.items(), key=lambda kv: -kv[1])[:4]
            shown = ", ".join(f"{name} {ms:.0f}" for name, ms in worst)
            median = statistics.median(totals)
            print(f"overseer {' '.join(command):<19} {median:>14.0f} ms  {shown}")
            if command == ["status"]:
                record("`overseer status` imports", f"{median:.0f} ms")
        script = Path(sys.executable).parent / "overseer"
        argv = [str(script)] if script.exists() else [sys.executable, "-m", "overseer"]
        print()
        walls, cpus = timed([*argv, "status"], env, runs, expect=0)
        wall = statistics.median(walls)
        print(
            f"`overseer status` against a running daemon: median {wall:.0f} ms of {runs} "
            f"(min {min(walls):.0f}, max {max(walls):.0f}; CPU {statistics.median(cpus):.0f} ms);"
            f" target ≤ {STATUS_TARGET_MS} ms"
        )
        # Without a daemon it reads the state directory itself (exit status 3): the whole
        # application is imported, and that is its price.
        alone = {**env, "OVERSEER_SOCKET": str(sockdir / "none.sock")}
        walls_alone, cpus_alone = timed([*argv, "status", "--config", str(path)], alone, runs, 3)
        print(
            f"`overseer status` with no daemon: median {statistics.median(walls_alone):.0f} ms "
            f"(CPU {statistics.median(cpus_alone):.0f} ms)"
        )
        print(f"(the load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores)")
        record(
            "`overseer status` wall time",
            f"{wall:.0f} ms",
            f"≤ {STATUS_TARGET_MS} ms",
            wall <= STATUS_TARGET_MS,
        )
    finally:
        daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(sockdir, ignore_errors=True)


if __name__ == "__main__":
    main()
