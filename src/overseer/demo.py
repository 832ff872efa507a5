"""`overseer demo`: a scratch repository with real problems, a real daemon on it, and either
the TUI (on a terminal) or its events printed live (anywhere else).

The scratch repository is the demo's own, so cycles run with dry-run off. It lives in a new
temporary directory that is removed when the demo ends, unless asked to keep it. On a terminal the
policy asks for approval, so a newcomer sees a change wait for them and can approve it. Without
one (CI, a pipe) low-risk changes promote themselves, two cycles run, and the demo ends with
the commits it made and the history of both — it never waits for a key that cannot come.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import yaml

from overseer.config import load_config
from overseer.render import EventPrinter, attempts_table
from overseer.runtime import Runtime

STATS = '''"""Small statistics helpers (a scratch project made by `overseer demo`)."""
import os
import sys
from typing import List


def mean(values: List[float]) -> float:
    if len(values) == 0:
        raise ValueError(f"mean of no values")
    return sum(values) / len(values)


def median(values: List[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
'''

TESTS = """import time

import pytest

from stats.core import mean, median


def test_mean():
    assert mean([1, 2, 3, 4]) == 2.5


def test_median_odd():
    assert median([3, 1, 2]) == 2


def test_median_even():
    assert median([4, 1, 3, 2]) == 2.5


def test_mean_of_nothing():
    with pytest.raises(ValueError):
        mean([])


def test_slow_but_correct():
    time.sleep(1.2)  # planted: a slow test that ANALYZE reports
    assert mean([10.0] * 1000) == 10.0
"""

PYPROJECT = """[project]
name = "stats"
version = "0.1.0"
requires-python = ">=3.11"

[tool.ruff]
target-version = "py311"
"""

POLICY = """# The demo's policy without a terminal: the scratch repository is the demo's own, so
# low-risk changes in the quality area promote themselves. Nobody waits for a key.
version: 1
autonomy: limited
max_changes_per_run: 1
areas: [quality]
"""

POLICY_INTERACTIVE = """# The demo's policy on a terminal: every change waits for your approval in the TUI
# (press a to approve, r to reject), as with overseer's embedded default.
version: 1
autonomy: supervised
max_changes_per_run: 1
"""

PLANTED = [
    "stats/core.py: unused imports `os` and `sys` (ruff F401)",
    "stats/core.py: an f-string without placeholders (F541)",
    "stats/core.py: `typing.List` where `list` will do (UP006, UP035)",
    "tests/test_core.py: a test that sleeps 1.2 s (a slow test)",
]


def command_name() -> str:
    """How the user can run overseer again: the script next to this interpreter."""
    script = Path(sys.executable).parent / "overseer"
    if not script.exists():
        return f"{sys.executable} -m overseer"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def make_scratch_repo(repo: Path) -> None:
    (repo / "stats").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "stats" / "__init__.py").write_text('"""stats: made by overseer demo."""\n')
    (repo / "stats" / "core.py").write_text(STATS)
    (repo / "tests" / "test_core.py").write_text(TESTS)
    (repo / "pyproject.toml").write_text(PYPROJECT)
    (repo / ".gitignore").write_text("__pycache__/\n.pytest_cache/\n")

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "--quiet", "--initial-branch=main")
    git("config", "user.name", "demo user")
    git("config", "user.email", "demo@example.invalid")
    git("add", "--all")
    git("commit", "--quiet", "-m", "A small statistics package with a few problems")


def run_demo(
    directory: Path | None,
    *,
    config_path: Path | None = None,
    state_dir: Path | None = None,
    debug: bool = False,
    interactive: bool | None = None,
    keep: bool = False,
) -> int:
    """Make the scratch repository, start a real daemon on it, and either open the TUI (on a
    terminal) or print the live events of two cycles (anywhere else).

    Without --dir the scratch directory is a new temporary one, removed when the demo ends —
    also on Ctrl-C, SIGTERM or a hang-up — unless `keep`; a --dir given is the user's and
    stays. Either way the demo says where it is, or that it is gone."""
    if interactive is None:
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
    temporary = directory is None
    base = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="overseer-demo-"))
    base = base.resolve()
    keep = keep or not temporary
    status = 1
    try:
        with _interrupted_by_signals():
            status = _demo(base, config_path, state_dir, debug, interactive, keep)
    except (KeyboardInterrupt, asyncio.CancelledError):
        # CancelledError: Ctrl-C in the instant asyncio.run (3.11) sets its handler up, when it
        # cancels the main task and forgets that it did.
        click.echo("\noverseer demo: interrupted; the daemon is stopped", err=True)
        status = 130
    finally:
        if keep:
            click.echo(f"\nThe scratch directory is kept at {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
            click.echo(
                f"\nThe scratch directory {base} is removed; `overseer demo --keep` keeps it."
            )
    return status


@contextlib.contextmanager
def _interrupted_by_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP end the demo as Ctrl-C does: the daemon is stopped, the scratch
    directory removed. Ctrl-C itself is set too: a process started with SIGINT ignored (a
    background job of a shell, some test runners' workers) inherits that, and its demo would
    then run on through Ctrl-C and leave its directory behind."""
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.getsignal(sig) for sig in signals}
    for sig in previous:
        signal.signal(sig, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _demo(
    base: Path,
    config_path: Path | None,
    state_dir: Path | None,
    debug: bool,
    interactive: bool,
    keep: bool,
) -> int:
    repo, policy = base / "repo", base / "policy.yaml"
    state = state_dir.resolve() if state_dir else base / "state"
    if repo.exists():
        click.echo(f"overseer demo: {repo} already exists; pass an empty --dir", err=True)
        return 1
    base.mkdir(parents=True, exist_ok=True)
    make_scratch_repo(repo)
    policy.write_text(POLICY_INTERACTIVE if interactive else POLICY)
    # Unix socket paths are short (107 bytes); --dir may be deep, so the socket lives in /tmp.
    socket_dir = Path(tempfile.mkdtemp(prefix="ovdemo", dir="/tmp"))
    socket = socket_dir / "overseer.sock"
    config = write_config(base, repo, policy, state, socket, config_path, interactive)

    click.echo(click.style("overseer demo", bold=True) + f" — a scratch repository at {repo}")
    click.echo("Planted problems:")
    for line in PLANTED:
        click.echo(f"  · {line}")
    if interactive:
        click.echo(f"Policy {policy}: every change waits for your approval (autonomy supervised)")
    else:
        click.echo(f"Policy {policy}: low-risk quality fixes promote themselves (autonomy limited)")
    click.echo(f"Config {config} · state {state} · daemon log {base / 'daemon.log'}")

    daemon = None
    try:
        daemon = start_daemon(config, socket, base / "daemon.log", debug)
        if not wait_for_socket(daemon, socket):
            click.echo(
                f"overseer demo: the daemon did not start; see {base / 'daemon.log'}", err=True
            )
            return 1
        click.echo(f"Daemon pid {daemon.pid} on {socket}\n")
        if interactive:
            status = run_interactive(socket)
        else:
            status = asyncio.run(run_headless(socket, repo, debug))
    finally:
        if daemon is not None:
            stop_daemon(daemon)
        shutil.rmtree(socket_dir, ignore_errors=True)
    click.echo(click.style("\n── history " + "─" * 59, bold=True))
    rt = Runtime.create(load_config(config), state)
    click.echo(attempts_table(rt.history.attempts(target="demo")))
    rt.close()
    if keep:
        me = command_name()
        click.echo(
            "\nLook closer:\n"
            f"  {me} show ID --state-dir {state}        # full provenance of one attempt\n"
            f"  {me} rollback ID --state-dir {state}    # revert a promoted change\n"
            f"  {me} daemon --config {config} & {me} tui --config {config}\n"
            f"  git -C {repo} log --oneline"
        )
    return status


def write_config(
    base: Path,
    repo: Path,
    policy: Path,
    state: Path,
    socket: Path,
    user_config: Path | None,
    interactive: bool,
) -> Path:
    """The demo's configuration: the user's (for the git identity, say) with the demo's target,
    policy, state and socket, dry-run off, and approval required only on a terminal."""
    data: dict[str, Any] = yaml.safe_load(user_config.read_text()) if user_config else {}
    data = data or {}
    data.update(
        policy=str(policy),
        state_dir=str(state),
        schedule={"every": "1h"},
        targets=[
            {
                "name": "demo",
                "path": str(repo),
                "slow_test_seconds": 1.0,
                # The scratch project needs no pytest plugin; overseer's own (installed for its
                # tests) would only slow each of its test runs by a second.
                "env": {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
            }
        ],
    )
    data["daemon"] = {**(data.get("daemon") or {}), "socket": str(socket), "shutdown_grace": "10s"}
    data["defaults"] = {
        **(data.get("defaults") or {}),
        "dry_run": False,
        "require_approval": interactive,
        "max_changes_per_run": 1,
    }
    path = base / "overseer.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def start_daemon(config: Path, socket: Path, log: Path, debug: bool) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "overseer", "daemon", "--config", str(config)]
    if debug:
        args.append("--debug")
    with log.open("wb") as out:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OVERSEER_SOCKET": str(socket)},
            start_new_session=True,  # Ctrl-C in the TUI is the TUI's, not the daemon's
        )


def wait_for_socket(daemon: subprocess.Popen[bytes], socket: Path, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            return False
        if socket.exists():
            return True
        time.sleep(0.1)
    return False


def stop_daemon(daemon: subprocess.Popen[bytes]) -> None:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def run_interactive(socket: Path) -> int:
    from overseer.client import call
    from overseer.tui.app import OverseerApp

    asyncio.run(call(socket, "run_now"))
    OverseerApp(socket).run()
    return 0


async def run_headless(socket: Path, repo: Path, debug: bool) -> int:
    """Two cycles, their events printed as they happen, each followed by what it made."""
    from overseer.client import Client, run_now_when_free

    printer = EventPrinter(debug=debug)
    status = 0
    async with Client(socket, name="overseer-demo") as client:
        await client.request("subscribe")
        for number in (1, 2):
            click.echo(click.style(f"── cycle {number} of 2 " + "─" * 50, bold=True))
            await run_now_when_free(client)
            async for event in client.events():
                printer(event)
                if event["kind"] == "CycleFinished":
                    status = status or (0 if event["status"] == "ok" else 1)
                    break
            ids = set(event.get("attempts", []))
            rows = [
                r
                for r in (await client.request("history", limit=10))["attempts"]
                if r["improvement_id"] in ids
            ]
            click.echo("")
            click.echo(attempts_table(rows) if rows else event["summary"])
            for row in rows:
                if row["status"] == "promoted":
                    click.echo(
                        "\nThe commit it made on main:\n"
                        + commit_summary(repo, row["git_commit_hash"])
                    )
            click.echo("")
    return status


def commit_summary(repo: Path, commit: str) -> str:
    return subprocess.run(
        ["git", "log", "-1", "--stat", "--format=commit %H%n%n    %s%n%n%(trailers)", commit],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.rstrip()
