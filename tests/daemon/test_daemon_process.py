"""The daemon as a real process: signals, sd_notify, a SIGKILL and a restart, the CLI."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.daemons import READY, DaemonProcess
from support.hanging import HANGS_ON_CANDIDATE, UTIL, hanging_repo
from support.helpers import GIT_ENV, daemon_config, git, init_repo, overseer, rows
from support.processes import processes_with, wait_for_phase, wait_gone, wait_started


def test_sd_notify_ready_status_watchdog_and_stopping(tmp_path, repo, sockdir):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(sockdir / "notify"))
    notify.settimeout(20)
    config, _ = daemon_config(tmp_path, repo, sockdir / "run" / "s.sock")
    daemon = DaemonProcess(
        config,
        sockdir / "run" / "s.sock",
        env={"NOTIFY_SOCKET": str(sockdir / "notify"), "WATCHDOG_USEC": "400000"},
    )
    messages = []
    try:
        while not any("WATCHDOG=1" in m for m in messages) or not any(
            "READY=1" in m for m in messages
        ):
            messages.append(notify.recv(4096).decode())
        ready = next(m for m in messages if "READY=1" in m)
        assert "STATUS=idle" in ready
        # During a cycle systemd's status names the phase (`systemctl status` shows it).
        assert "cycle started" in daemon.cli("run-now").stdout
        while not any(re.search(r"STATUS=cycle \w{8} on proj: ANALYZE", m) for m in messages):
            messages.append(notify.recv(4096).decode())
        while not any(m.startswith("STATUS=idle") for m in messages[-1:]):
            messages.append(notify.recv(4096).decode())  # back to idle when it ends
        code = daemon.stop()
        while not any("STOPPING=1" in m for m in messages):
            messages.append(notify.recv(4096).decode())
    finally:
        notify.close()
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert code == 0, daemon.output()
    assert any(m.startswith("STOPPING=1\nSTATUS=stopping: SIGTERM") for m in messages)


@pytest.mark.usefixtures("warm_baseline")
def test_cli_against_a_running_daemon(tmp_path, repo, sockdir):
    config, _ = daemon_config(
        tmp_path, repo, sockdir / "run" / "s.sock", defaults={"require_approval": True}
    )
    daemon = DaemonProcess(config, sockdir / "run" / "s.sock")
    try:
        daemon.wait_ready()
        status = daemon.cli("status")
        assert (
            status.returncode == 0
            and "IDLE" in status.stdout
            and "autonomy supervised" in status.stdout
        )
        watcher = subprocess.Popen(
            [sys.executable, "-m", "overseer", "watch", "--json"],
            env=daemon.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while (
            time.monotonic() < deadline
            and json.loads(daemon.cli("status", "--json").stdout)["subscribers"] < 1
        ):
            time.sleep(0.1)
        assert "cycle started" in daemon.cli("run-now").stdout
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            r["status"] == "awaiting_approval" for r in rows(tmp_path / "state")
        ):
            time.sleep(0.2)
        [row] = rows(tmp_path / "state")
        approved = daemon.cli("approve", row["improvement_id"][:8], "--reason", "looks right")
        assert approved.returncode == 0, approved.stderr
        assert "promoted" in approved.stdout
        assert git(repo, "rev-parse", "main") == row["git_commit_hash"]
        history = json.loads(daemon.cli("history", "--json").stdout)
        assert history[0]["status"] == "promoted"
        watcher.send_signal(signal.SIGTERM)
        out, err = watcher.communicate(timeout=10)
        assert watcher.returncode == 0 and err == "", err  # SIGTERM ends `watch` quietly
        kinds = [json.loads(line)["kind"] for line in out.splitlines()]
        assert (
            "CycleStarted" in kinds and "ApprovalRequested" in kinds and "ChangePromoted" in kinds
        )
    finally:
        code = daemon.stop()
    assert code == 0, daemon.output()
    assert not (sockdir / "run" / "s.sock").exists()


def daemon_on_a_hanging_repo(tmp_path, sockdir, grace: int) -> tuple[DaemonProcess, Path]:
    """A daemon (not started yet) whose cycle's tests hang, with `grace` seconds to stop, and
    its repository."""
    repo = hanging_repo(tmp_path)
    config, _ = daemon_config(
        tmp_path,
        repo,
        sockdir / "run" / "s.sock",
        target={"ruff_select": ["F401"], "test_timeout": 300},
        daemon={"shutdown_grace": grace},
    )
    return DaemonProcess(config, sockdir / "run" / "s.sock"), repo


def test_sigterm_mid_cycle_interrupts_after_the_grace_period(tmp_path, sockdir):
    daemon, repo = daemon_on_a_hanging_repo(tmp_path, sockdir, grace=2)
    try:
        daemon.wait_ready()
        daemon.cli("run-now")
        iid = wait_for_phase(tmp_path / "state", "EVALUATE")
        wait_started("316.5", tmp_path)
        started = time.monotonic()
        code = daemon.stop()
        took = time.monotonic() - started
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert code == 0, daemon.output()
    assert took < 20
    row = next(r for r in rows(tmp_path / "state") if r["improvement_id"] == iid)
    assert row["status"] == "interrupted"
    assert (
        "interrupted in phase EVALUATE" in row["failure_reason"]
        and "did not finish within 2 s" in row["failure_reason"]
    )
    [cycle] = rows(tmp_path / "state", "cycles")
    assert cycle["status"] == "interrupted"
    assert wait_gone("316.5", tmp_path) == []
    assert git(repo, "worktree", "list").count("\n") == 0
    assert git(repo, "branch", "--list", "overseer/*") == ""


def test_a_second_sigterm_stops_at_once(tmp_path, sockdir):
    daemon, _ = daemon_on_a_hanging_repo(tmp_path, sockdir, grace=120)
    try:
        daemon.wait_ready()
        daemon.cli("run-now")
        wait_for_phase(tmp_path / "state", "EVALUATE")
        wait_started("316.5", tmp_path)
        daemon.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        started = time.monotonic()
        code = daemon.stop()
        assert time.monotonic() - started < 15
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert code == 0, daemon.output()
    assert "second SIGTERM" in daemon.output()
    [row] = rows(tmp_path / "state")
    assert row["status"] == "interrupted"
    assert wait_gone("316.5", tmp_path) == []


def test_sigkill_mid_cycle_then_restart_keeps_the_invariants(tmp_path, sockdir):
    repo = init_repo(
        tmp_path / "proj",
        {
            "pkg/__init__.py": "",
            "pkg/util.py": UTIL,
            "pkg/waiting.py": "import os\nimport sys\n\n\ndef one():\n    return 1\n",  # ranked first: two findings
            "tests/test_util.py": HANGS_ON_CANDIDATE,
        },
    )
    sock = sockdir / "run" / "s.sock"
    # First an attempt that waits for approval (on pkg/waiting.py) ...
    config, _ = daemon_config(
        tmp_path, repo, sock, target={"ruff_select": ["F401"], "test_timeout": 300}
    )
    first = DaemonProcess(config, sock)
    try:
        first.wait_ready()
        first.cli("run-now")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not [
            r for r in rows(tmp_path / "state") if r["status"] == "awaiting_approval"
        ]:
            time.sleep(0.2)
        [waiting] = [r for r in rows(tmp_path / "state") if r["status"] == "awaiting_approval"]
        assert waiting["target_file"] == "pkg/waiting.py"
        # ... then a cycle whose candidate hangs in EVALUATE, and the daemon is SIGKILLed.
        first.cli("run-now")
        killed = wait_for_phase(tmp_path / "state", "EVALUATE")
        wait_started("316.5", tmp_path)
        first.proc.kill()
        first.proc.wait()
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
    assert processes_with("316.5", tmp_path)  # the orphaned test run is still there
    assert sock.exists()  # and so is the stale socket
    second = DaemonProcess(config, sock)
    try:
        second.wait_ready()
        status = json.loads(second.cli("status", "--json").stdout)
    finally:
        code = second.stop()
    assert code == 0, second.output()
    by_id = {r["improvement_id"]: r for r in rows(tmp_path / "state")}
    assert by_id[killed]["status"] == "interrupted"
    assert "interrupted in phase EVALUATE" in by_id[killed]["failure_reason"]
    assert by_id[waiting["improvement_id"]]["status"] == "awaiting_approval"  # survived
    assert [p["improvement_id"] for p in status["pending_approvals"]] == [waiting["improvement_id"]]
    assert not [r for r in by_id.values() if r["status"] in ("running", "promoting")]
    assert not [c for c in rows(tmp_path / "state", "cycles") if c["status"] == "running"]
    assert wait_gone("316.5", tmp_path) == []
    # Only the waiting attempt keeps a worktree and a branch.
    assert git(repo, "branch", "--list", "--format=%(refname:short)", "overseer/*").split() == [
        f"overseer/{waiting['improvement_id']}"
    ]
    assert git(repo, "worktree", "list").count("\n") == 1
    # No commit of overseer's on main (nothing was promoted), and main is where it was.
    assert "Overseer-Improvement-Id" not in git(repo, "log", "--format=%B", "main")


def test_sighup_reloads(tmp_path, repo, sockdir):
    config, _ = daemon_config(tmp_path, repo, sockdir / "run" / "s.sock")
    daemon = DaemonProcess(config, sockdir / "run" / "s.sock")
    try:
        daemon.wait_ready()
        daemon.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not [
            e for e in rows(tmp_path / "state", "phase_events") if e["kind"] == "ConfigReloaded"
        ]:
            time.sleep(0.1)
    finally:
        code = daemon.stop()
    assert [e for e in rows(tmp_path / "state", "phase_events") if e["kind"] == "ConfigReloaded"]
    assert code == 0, daemon.output()


def test_without_a_daemon_the_cli_says_so(tmp_path, repo, sockdir):
    env = {
        "OVERSEER_SOCKET": str(sockdir / "none.sock"),
        "OVERSEER_STATE_DIR": str(tmp_path / "state"),
    }
    status = overseer("status", env=env)
    assert status.returncode == 3
    assert (
        f"daemon: not running — no daemon is running: there is no socket at {sockdir / 'none.sock'}"
        in status.stdout
    )
    run_now = overseer("run-now", env=env)
    assert run_now.returncode == 1 and "overseer run --once" in run_now.stderr
    watch = overseer("watch", env=env)
    assert watch.returncode == 1 and "no daemon is running" in watch.stderr
    # Working without a daemon is normal (quiet); --debug says how it was done.
    paused = overseer("pause", "--reason", "maintenance", env=env)
    assert paused.returncode == 0 and paused.stderr == "", paused.stderr
    assert "paused" in paused.stdout
    again = overseer("--debug", "pause", "--reason", "maintenance", env=env)
    assert again.returncode == 0
    assert "setting it in the state directory directly" in again.stderr, again.stderr
    again = overseer("status", "--json", env=env)
    assert json.loads(again.stdout)["paused"]["reason"] == "maintenance"
    blocked = overseer("run", "--once", "--target", str(repo), "--no-dry-run", env=env)
    assert blocked.returncode == 1 and "overseer is paused" in blocked.stderr


def test_the_log_is_plain_lines_on_a_terminal_and_json_lines_otherwise(tmp_path, repo, sockdir):
    """journald gets one JSON object per line; a person at a terminal gets readable lines."""
    import pty
    import select

    config, _ = daemon_config(tmp_path, repo, sockdir / "run" / "s.sock")
    env = {**os.environ, **GIT_ENV, "OVERSEER_SOCKET": str(sockdir / "run" / "s.sock")}
    argv = [sys.executable, "-m", "overseer", "daemon", "--config", str(config)]

    def read_some(fd: int) -> str:  # what is there within a second, never blocking longer
        ready, _, _ = select.select([fd], [], [], 1.0)
        return os.read(fd, 4096).decode(errors="replace") if ready else ""

    def first_lines(stderr, read) -> list[str]:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        text, deadline = "", time.monotonic() + 30
        try:
            while "ready: " not in text and time.monotonic() < deadline:
                text += read()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        return [line for line in text.replace("\r", "").splitlines() if "ready: " in line]

    primary, secondary = pty.openpty()
    try:
        [on_terminal] = first_lines(secondary, lambda: read_some(primary))
    finally:
        os.close(primary)
        os.close(secondary)
    assert not on_terminal.startswith("{")
    assert re.match(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO +overseer\.daemon\.server: ready: ", on_terminal
    )

    reader, writer = os.pipe()
    try:
        [in_a_pipe] = first_lines(writer, lambda: read_some(reader))
    finally:
        os.close(reader)
        os.close(writer)
    record = json.loads(in_a_pipe)
    assert record["level"] == "info" and record["message"].startswith("ready: ")
    assert set(record) == {"at", "level", "logger", "message"}


def test_the_soft_open_file_limit_is_raised_to_the_hard_one(tmp_path, repo, sockdir):
    # systemd starts services with a soft limit of 1024: a flood of idle connections used it up.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = min(256, hard)
    if soft == hard:
        pytest.skip(f"the hard open-file limit here is {hard}: nothing to raise")
    config, _ = daemon_config(tmp_path, repo, sockdir / "run" / "s.sock")
    daemon = DaemonProcess(
        config,
        sockdir / "run" / "s.sock",
        preexec=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
    )
    try:
        daemon.wait_ready()
        limits = Path(f"/proc/{daemon.proc.pid}/limits").read_text()
        [line] = [x for x in limits.splitlines() if x.startswith("Max open files")]
        assert line.split()[3:5] == [str(hard), str(hard)], line
        assert f"open-file limit {hard} (hard {hard})" in daemon.output()
    finally:
        code = daemon.stop()
    assert code == 0, daemon.output()


def test_a_second_daemon_on_the_same_state_directory_refuses_to_start(tmp_path, repo, sockdir):
    """Issue 14: the second one said "cycle started", then found every target busy."""
    config, _ = daemon_config(tmp_path, repo, sockdir / "run" / "s.sock")
    first = DaemonProcess(config, sockdir / "run" / "s.sock").wait_ready()
    try:
        for socket_path in (sockdir / "run" / "s.sock", sockdir / "other" / "s.sock"):
            second = DaemonProcess(config, socket_path)  # the same state directory
            try:
                code = second.proc.wait(timeout=60)
            finally:
                second.kill()
            said = second.output()
            assert code == 1, said
            assert "the daemon did not start: another daemon runs on this state directory" in said
            assert "Traceback" not in said and READY not in said, said
            if socket_path != first.socket:  # nothing answers there
                asked = second.cli("run-now")
                assert asked.returncode == 1 and "cycle started" not in asked.stdout
        # The first one still serves, on its own socket, which the second left alone.
        status = first.cli("status", "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["pid"] == first.proc.pid
    finally:
        assert first.stop() == 0, first.output()
