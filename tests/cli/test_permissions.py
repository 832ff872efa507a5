"""Bad paths and permissions, as people meet them: a clear error that names the path and says
what to do, with the documented exit status, never a traceback; and the reading commands work
for whoever may read the state directory, without a daemon and without write access (the
README's systemd layout: a state directory 0750 and a database 0640 of the daemon's user,
readable by its group)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3

import pytest

from support.helpers import overseer
from support.users import overseer_as_nobody

# A group only the test's reader is in (the kernel needs no name for it).
READERS = 64999


def no_traceback(out) -> None:
    assert "Traceback" not in out.stdout + out.stderr, out.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--once", "--target", "{repo}"],
        ["daemon", "--target", "{repo}", "--socket", "{tmp}/s.sock"],
        ["pause"],
        ["history"],
        ["show", "abcdef12"],
        ["reject", "abcdef12", "--reason", "no"],
        ["stats"],
    ],
    ids=lambda args: args[0],
)
def test_a_state_directory_below_a_file_is_a_clear_error(tmp_path, repo, args):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    state = blocker / "state"
    filled = [a.format(repo=repo, tmp=tmp_path) for a in args]
    out = overseer(*filled, "--state-dir", str(state))
    no_traceback(out)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"{state}" in out.stderr and "is a file, not a directory" in out.stderr, out.stderr
    assert blocker.read_text() == "not a directory\n"


def test_status_with_a_state_directory_below_a_file_says_so_and_exits_3(tmp_path):
    state = tmp_path / "a-file" / "state"
    (tmp_path / "a-file").write_text("")
    out = overseer("status", "--state-dir", str(state))
    no_traceback(out)
    assert out.returncode == 3  # no daemon: status's own exit status, whatever else is wrong
    assert f"{state}" in out.stdout and "is a file, not a directory" in out.stdout, out.stdout


# -- a socket directory closed to the user ------------------------------------------------------


@pytest.fixture
def closed_socket(sockdir):
    """A socket in a directory only root and its group may enter (0750), as systemd's
    RuntimeDirectory for the daemon: sockdir/overseer/overseer.sock."""
    directory = sockdir / "overseer"
    directory.mkdir(mode=0o750)
    directory.chmod(0o750)
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(directory / "overseer.sock"))
    listening.listen()
    yield directory / "overseer.sock"
    listening.close()


ASK = "ask to be added to its socket group"


@pytest.mark.parametrize("how", ["named", "found"])
def test_a_socket_directory_the_user_cannot_enter_says_whom_to_ask(sockdir, closed_socket, how):
    """Named (--socket, OVERSEER_SOCKET) or found where clients look (here the user's runtime
    directory; /run/overseer for the system daemon): the same clear answer."""
    env: dict[str, str | None]
    if how == "named":
        env = {"OVERSEER_SOCKET": str(closed_socket)}
    else:
        env = {"OVERSEER_SOCKET": None, "XDG_RUNTIME_DIR": str(sockdir)}
    env["OVERSEER_STATE_DIR"] = str(sockdir / "no-state")
    for args, code in (
        (["status"], 3),
        (["watch"], 1),
        (["run-now"], 1),
        (["pause"], 1),
        (["history"], 1),
    ):
        out = overseer_as_nobody(*args, env=env)
        no_traceback(out)
        assert out.returncode == code, (args, out.stdout, out.stderr)
        assert ASK in out.stdout + out.stderr, (args, out.stdout, out.stderr)
        assert f"permission denied on {closed_socket.parent}" in out.stdout + out.stderr


# -- readers without write access ---------------------------------------------------------------


@pytest.fixture
def readable_state(sockdir, repo, sample):
    """A state directory with one attempt in its history, written by root and then given the
    README's modes: 0750 root:READERS, the database 0640 root:READERS; no daemon runs."""
    state = sockdir / "state"
    sample.warm(state, repo)
    out = overseer("run", "--once", "--target", str(repo), "--state-dir", str(state))
    assert out.returncode == 0, out.stderr
    [row] = json.loads(overseer("history", "--json", "--state-dir", str(state)).stdout)
    os.chown(state, 0, READERS)
    state.chmod(0o750)
    for path in state.iterdir():
        if path.is_file():
            os.chown(path, 0, READERS)
            path.chmod(0o640)
    return state, row["improvement_id"]


def close_cleanly(database) -> None:
    """As the last writer's close does (a daemon stopped): the write-ahead log is folded into
    the database and its -wal and -shm files are gone."""
    conn = sqlite3.connect(database)
    conn.execute("pragma wal_checkpoint(truncate)")
    conn.close()
    assert not database.with_name(database.name + "-wal").exists()


@pytest.mark.parametrize("stopped", ["cleanly", "killed"])
def test_a_group_member_who_cannot_write_reads_the_history_without_a_daemon(
    readable_state, stopped
):
    state, iid = readable_state
    if stopped == "cleanly":
        close_cleanly(state / "history.sqlite3")
    else:  # the write-ahead log is left, with the database's mode
        assert (state / "history.sqlite3-wal").stat().st_mode & 0o777 == 0o640
    before = sorted(p.name for p in state.iterdir())
    env = {"OVERSEER_STATE_DIR": str(state)}

    history = overseer_as_nobody("history", groups=(READERS,), env=env)
    no_traceback(history)
    assert history.returncode == 0, history.stderr
    assert iid[:8] in history.stdout and "dry_run" in history.stdout

    as_json = overseer_as_nobody("history", "--json", groups=(READERS,), env=env)
    assert [r["improvement_id"] for r in json.loads(as_json.stdout)] == [iid]

    show = overseer_as_nobody("show", iid[:8], groups=(READERS,), env=env)
    no_traceback(show)
    assert show.returncode == 0, show.stderr
    assert "-import json" in show.stdout

    status = overseer_as_nobody("status", groups=(READERS,), env=env)
    no_traceback(status)
    assert status.returncode == 3, status.stdout + status.stderr  # no daemon: documented
    assert "NOT RUNNING" in status.stdout and "NOT READ" not in status.stdout, status.stdout

    assert sorted(p.name for p in state.iterdir()) == before  # a reader left nothing behind


def test_a_stranger_to_the_state_directory_gets_a_clear_error(readable_state):
    state, iid = readable_state
    env = {"OVERSEER_STATE_DIR": str(state)}
    for args in (["history"], ["show", iid[:8]]):
        out = overseer_as_nobody(*args, env=env)  # not in READERS
        no_traceback(out)
        assert out.returncode == 1, out.stdout + out.stderr
        assert f"{state}" in out.stderr and "permission denied" in out.stderr.lower(), out.stderr
