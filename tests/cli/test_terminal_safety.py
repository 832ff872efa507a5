"""A file name and a reason that try to act on the terminal (support.hostile) reach every front
door of the command line — `run --once`, `status`, `history`, `show`, `policy explain`,
`reject`, `watch` — and the commit message on the attempt's branch shown visibly (`\\x1b]52;…`),
never raw; `--json` keeps the exact strings, for a program to read back."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from overseer.client import Client
from overseer.daemon.server import run_daemon
from overseer.vocabulary import ErrorRaised
from support.helpers import GIT_ENV, daemon_config, git, next_event, overseer
from support.hostile import FILE_NAME, REASON, assert_harmless, hostile_repo


def test_a_hostile_file_name_and_reason_are_shown_not_acted_on(tmp_path):
    repo = hostile_repo(tmp_path / "proj")
    config, _ = daemon_config(tmp_path, repo, tmp_path / "no-daemon.sock")
    cfg = ["--config", str(config)]

    run = overseer("run", "--once", *cfg)
    assert run.returncode == 0, run.stderr
    assert "awaiting approval" in run.stdout, run.stdout
    assert_harmless(run.stdout + run.stderr)

    [row] = json.loads(overseer("history", "--json", *cfg).stdout)
    assert row["target_file"] == FILE_NAME  # exact: JSON escapes, it does not rewrite
    iid = row["improvement_id"]
    table = overseer("history", *cfg).stdout
    assert_harmless(table, shows="\\x07.py")  # the column keeps the end of a long name
    header, line = table.splitlines()
    assert line.index("2✔") == header.index("TESTS")  # measured as shown: the columns line up

    status = overseer("status", *cfg)
    assert status.returncode == 3 and iid[:8] in status.stdout, status.stdout
    assert_harmless(status.stdout)
    assert (
        json.loads(overseer("status", "--json", *cfg).stdout)["pending_approvals"][0]["target_file"]
        == FILE_NAME
    )

    shown = overseer("show", iid, *cfg)
    assert shown.returncode == 0, shown.stderr
    assert_harmless(shown.stdout)
    assert "-import os" in shown.stdout

    explained = overseer("policy", "explain", iid, *cfg)
    assert explained.returncode == 0, explained.stderr
    assert_harmless(explained.stdout)

    # The commit overseer made: `git log` would act on what its message holds.
    message = git(repo, "log", "-1", "--format=%B", f"overseer/{iid}")
    assert_harmless(message)
    names = git(repo, "diff-tree", "--no-commit-id", "--name-only", "-z", "-r", f"overseer/{iid}")
    assert names.split("\0") == [FILE_NAME, ""]  # the file itself is the one in the repository

    rejected = overseer("reject", iid, "--reason", REASON, *cfg)
    assert rejected.returncode == 0, rejected.stderr
    assert_harmless(rejected.stdout + rejected.stderr, shows=iid[:8])

    after = overseer("show", iid, *cfg)
    assert_harmless(after.stdout)
    assert "\\x1b[2J" in after.stdout and "\\x9b" in after.stdout and "\\u202e" in after.stdout
    data = json.loads(overseer("show", iid, "--json", *cfg).stdout)
    assert [a["reason"] for a in data["approvals"]] == [REASON]
    assert data["target_file"] == FILE_NAME


async def read_until(stream: asyncio.StreamReader, marker: str, seconds: float = 60) -> str:
    """What `stream` says until a line holding `marker` (included)."""
    out = []

    async def read() -> None:
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"the stream ended before {marker!r}:\n{''.join(out)}")
            out.append(line)
            if marker in line:
                return

    await asyncio.wait_for(read(), seconds)
    return "".join(out)


async def test_watch_shows_the_events_harmless_and_watch_json_keeps_them_exact(tmp_path, sockdir):
    repo = hostile_repo(tmp_path / "proj")
    _, config = daemon_config(tmp_path, repo, sockdir / "run" / "s.sock")
    from overseer.daemon.server import DaemonOptions

    async with run_daemon(DaemonOptions(config=config)) as daemon:
        env = {**os.environ, **GIT_ENV, "OVERSEER_SOCKET": str(daemon.socket_path)}
        watchers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "overseer",
                "watch",
                *flags,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            for flags in ([], ["--json"])
        ]
        try:

            async def subscribed() -> None:
                while sum(c.outbox.subscribed for c in daemon.connections) < len(watchers):
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(subscribed(), 30)
            async with Client(daemon.socket_path) as client:
                await client.request("subscribe")
                await client.request("run_now")
                requested = await next_event(client, "ApprovalRequested")
                await next_event(client, "CycleFinished")
                await client.request("reject", id=requested["improvement_id"], reason=REASON)
                await next_event(client, "ChangeRejected")
            daemon.rt.bus.emit(ErrorRaised(where="test", message="the end of the test"))
            text, raw = [await read_until(w.stdout, "the end of the test") for w in watchers]
        finally:
            for watcher in watchers:
                watcher.terminate()
                await watcher.wait()
    assert_harmless(text, shows="\\x1b[2J")  # the rejection's reason
    assert requested["improvement_id"][:8] in text
    events = [json.loads(line) for line in raw.splitlines()]
    [rejection] = [e for e in events if e["kind"] == "ChangeRejected"]
    assert rejection["reason"] == REASON
    assert FILE_NAME in [e.get("target_file") for e in events]
