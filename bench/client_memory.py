"""The daemon's memory under clients that do not play fair, and after they leave.

    .venv/bin/python bench/client_memory.py [--clients 20] [--partial 200]

Issue 14 saw 20 clients that send requests and never read the answers take the daemon from
109 to 833 MiB, and 200 half-sent lines take it from 57 to 204 MB; neither came back when they
left. Here the real daemon runs as a process on a history of 1,000 attempts, and its RSS is
read from /proc:

1. idle, once it is ready and has answered one such request (warmed);
2. while N clients each say hello, then send `history` requests for 1,000 attempts (about
   200 KB each answer) as fast as the daemon takes them and never read: the highest RSS
   seen, and what became of each client (disconnected by the daemon, or stalled because it
   stopped reading from it);
3. after they close, once the daemon says it has given memory back (it waits until none has
   left for 2 s);
4. the same with M clients that each send a line of 1,000,000 bytes with no end, and stay;

and how long `pause` takes to be answered while the daemon still works on the flood.

Targets: under the flood, at most 5 MB a client above idle (its budget,
daemon.max_client_buffer_kb, 4 MiB, one answer beyond it, the reader's buffer, its share of the
answers being worked out); after either burst, within 10 MB of idle; pause within a second.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from summary import record  # noqa: E402
from support.daemons import DaemonProcess  # noqa: E402
from support.helpers import daemon_config, init_repo  # noqa: E402
from support.load import HELLO, fill_history  # noqa: E402

ROWS = 1000
REQUEST = b'{"id": 1, "op": "history", "args": {"limit": 1000}}\n'
PARTIAL = 1_000_000  # bytes of a line that never ends (under the 1 MiB limit it once had)
STUCK = 2.0  # seconds a send may block before the client counts the daemon as not reading
# What one such client may cost: its budget (daemon.max_client_buffer_kb, 4 MiB), one answer
# beyond it, the reader's buffer, and its share of the answers being worked out.
PER_CLIENT_MB = 5.0
# After the clients leave: answers still in the making may take 5 s to be dropped, then the
# daemon waits 2 s for no more to leave, then gives memory back and says so.
SETTLE = 20.0
GIVEN_BACK = "memory given back"


class Sampler:
    """The daemon's RSS every 20 ms, in a thread; the highest seen."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self.daemon.rss_kb())
            time.sleep(0.02)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024


def connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    sock.settimeout(STUCK)
    return sock


def never_reading(path: Path, outcomes: list[str], held: list[socket.socket]) -> None:
    """Hello, then requests until the daemon hangs up or stops taking them."""
    sock = connect(path)
    held.append(sock)
    try:
        sock.sendall(HELLO)
        while True:
            sock.sendall(REQUEST * 16)
    except TimeoutError:
        outcomes.append("stalled (no longer read from)")
    except OSError:
        outcomes.append("disconnected")


def half_sent(path: Path, outcomes: list[str], held: list[socket.socket]) -> None:
    sock = connect(path)
    held.append(sock)
    try:
        sock.sendall(HELLO + b'{"id": 1, "op": "ping", "pad": "' + b"x" * PARTIAL)
        outcomes.append("sent it all")
    except TimeoutError:
        outcomes.append("stalled (no longer read from)")
    except OSError:
        outcomes.append("refused or disconnected")


def given_back(daemon: DaemonProcess) -> int:
    """How many times the daemon said it gave memory back."""
    return daemon.output().count(GIVEN_BACK)


def burst(daemon: DaemonProcess, client, count: int, pause: bool = False) -> dict[str, object]:
    """`count` clients at once; the RSS while they are there, and once they are gone and the
    daemon has given memory back (or SETTLE seconds passed without it doing so)."""
    outcomes: list[str] = []
    held: list[socket.socket] = []
    trims = given_back(daemon)
    sampler = Sampler(daemon)
    threads = [
        threading.Thread(target=client, args=(daemon.socket, outcomes, held)) for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pause_ms = 0.0
    if pause:  # the kill switch, while the daemon still works on what they sent
        started = time.monotonic()
        assert daemon.request("pause", reason="bench") == {"paused": True}
        pause_ms = (time.monotonic() - started) * 1000
        daemon.request("resume")
    time.sleep(1.0)  # what the daemon still does for them (answers in the making) shows
    during = sampler.stop()
    for sock in held:
        sock.close()
    deadline = time.monotonic() + SETTLE
    while given_back(daemon) == trims and time.monotonic() < deadline:
        time.sleep(0.1)
    trimmed = given_back(daemon) > trims
    time.sleep(0.5)
    after = daemon.rss_kb() / 1024
    counts = {o: outcomes.count(o) for o in sorted(set(outcomes))}
    return {
        "during": during,
        "after": after,
        "outcomes": counts,
        "trimmed": trimmed,
        "pause_ms": pause_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--partial", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("GIT_CONFIG_GLOBAL", "/dev/null")
    workdir = Path(tempfile.mkdtemp(prefix="overseer-bench-"))
    sockdir = Path(tempfile.mkdtemp(prefix="ovb", dir="/tmp"))
    daemon = None
    try:
        repo = init_repo(workdir / "repo")
        path, config = daemon_config(workdir, repo, sockdir / "s.sock")
        fill_history(Path(config.state_dir), ROWS)
        daemon = DaemonProcess(path, sockdir / "s.sock", log=workdir / "daemon.log", direct=True)
        daemon.wait_ready()
        # Idle, warmed: one client has read one such answer (the database's cache, the code
        # paths a first request loads), so what stays after a burst is what the burst left.
        assert len(daemon.request("history", limit=ROWS)["attempts"]) == ROWS
        time.sleep(2)
        idle = daemon.rss_kb() / 1024
        flood = burst(daemon, never_reading, args.clients, pause=True)
        partial = burst(daemon, half_sent, args.partial)
        alive = daemon.request("ping") == {"pong": True}
    finally:
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(sockdir, ignore_errors=True)

    bound = idle + args.clients * PER_CLIENT_MB
    rows = [
        ("idle", f"{idle:.0f} MB", ""),
        (
            f"{args.clients} never-reading clients, highest",
            f"{flood['during']:.0f} MB ({flood['during'] / idle:.1f}× idle)",
            f"≤ {bound:.0f} MB",
        ),
        ("  what became of them", ", ".join(f"{n} {o}" for o, n in flood["outcomes"].items()), ""),
        ("  `pause` answered meanwhile in", f"{flood['pause_ms']:.0f} ms", "< 1000 ms"),
        (
            "  after they left",
            f"{flood['after']:.0f} MB ({flood['after'] / idle:.2f}× idle)",
            f"≤ {idle + 10:.0f} MB",
        ),
        (
            f"{args.partial} half-sent lines of {PARTIAL:,} bytes, highest",
            f"{partial['during']:.0f} MB ({partial['during'] / idle:.1f}× idle)",
            "",
        ),
        (
            "  what became of them",
            ", ".join(f"{n} {o}" for o, n in partial["outcomes"].items()),
            "",
        ),
        (
            "  after they left",
            f"{partial['after']:.0f} MB ({partial['after'] / idle:.2f}× idle)",
            f"≤ {idle + 10:.0f} MB",
        ),
        ("the daemon answers afterwards", "yes" if alive else "NO", ""),
        (
            "memory given back after each burst",
            f"{'yes' if flood['trimmed'] else 'NO'}, {'yes' if partial['trimmed'] else 'NO'}",
            "",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'daemon RSS':<{width}}  {'figure':<28} target")
    for name, figure, target in rows:
        print(f"{name:<{width}}  {figure:<28} {target}")
    record("daemon RSS idle", f"{idle:.0f} MB")
    record(
        f"RSS, {args.clients} never-reading clients",
        f"{flood['during']:.0f} MB",
        f"≤ {bound:.0f} MB",
        flood["during"] <= bound,
    )
    pause_ms = flood["pause_ms"]
    assert isinstance(pause_ms, float)
    record(
        f"pause under {args.clients} flooding clients",
        f"{pause_ms:.0f} ms",
        "< 1 s",
        pause_ms < 1000,
    )
    for name, result in (("never-reading clients", flood), ("half-sent lines", partial)):
        after = result["after"]
        assert isinstance(after, float)
        record(
            f"RSS after the {name} left", f"{after:.0f} MB", "≤ idle + 10 MB", after <= idle + 10
        )


if __name__ == "__main__":
    main()
