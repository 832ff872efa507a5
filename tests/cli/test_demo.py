"""`overseer demo` as `make demo` runs it without a terminal (CI, a pipe): it never waits, and
it leaves no scratch directory behind — also when interrupted — unless asked to keep it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from support.helpers import GIT_ENV, git, overseer, short_dir


@pytest.fixture
def tmpdir_env():
    """A TMPDIR of the test's own (short: the demo's socket path must fit), so the demo's
    temporary directories can be counted; the environment for the demo's process."""
    with short_dir() as tmp:
        yield tmp, {"TMPDIR": str(tmp)}


def scratch_dirs(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("overseer-demo-*"))


def test_the_headless_demo_runs_two_real_cycles_shows_what_it_did_and_cleans_up(tmpdir_env):
    tmp, env = tmpdir_env
    out = overseer("demo", env=env, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "low-risk quality fixes promote themselves" in text
    for phase in ("ANALYZE", "GENERATE", "SAFETY", "DEPLOY", "EVALUATE", "LEARN", "RECORD"):
        assert f" {phase} " in text
    assert (
        text.index("── cycle 1 of 2")
        < text.index("The commit it made on main")
        < text.index("── cycle 2 of 2")
    )
    assert text.count("promoted to main @") == 2
    assert text.count("Autonomous improvement: quality:") == 2  # the commits, shown
    history = text[text.index("── history") :]
    assert history.count("promoted  demo") == 2
    [base] = re.findall(r"The scratch directory (\S+) is removed", text)
    assert Path(base).parent == tmp and not Path(base).exists()
    assert scratch_dirs(tmp) == [] and list(tmp.iterdir()) == []


def start_demo(
    env: dict[str, str], *args: str, sigint_ignored: bool = False
) -> subprocess.Popen[str]:
    full = {**os.environ, **GIT_ENV, **env, "OVERSEER_SOCKET": "/nonexistent/overseer.sock"}
    full.pop("OVERSEER_CONFIG", None)
    full.pop("OVERSEER_STATE_DIR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "overseer", "demo", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full,
        # As a shell's background job starts: with Ctrl-C ignored, inherited.
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        if sigint_ignored
        else None,
    )


def interrupt_once_running(demo: subprocess.Popen[str], sig: int) -> tuple[int, str, int]:
    """Wait until the demo's daemon runs, send `sig`; the exit status, the output, the pid of
    the daemon it had started."""
    assert demo.stdout is not None
    seen = []
    for line in demo.stdout:
        seen.append(line)
        if found := re.match(r"Daemon pid (\d+)", line):
            daemon_pid = int(found.group(1))
            break
    else:
        raise AssertionError("the demo's daemon never started:\n" + "".join(seen))
    demo.send_signal(sig)
    rest, _ = demo.communicate(timeout=120)
    return demo.returncode, "".join(seen) + rest, daemon_pid


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie not yet reaped by its parent (this test's process is not it) counts as gone.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[1].startswith("Z")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_demo_stops_its_daemon_and_removes_its_directory(tmpdir_env, sig):
    tmp, env = tmpdir_env
    code, text, daemon_pid = interrupt_once_running(start_demo(env), sig)
    assert code == 130, text
    assert "interrupted; the daemon is stopped" in text
    assert "is removed; `overseer demo --keep` keeps it" in text
    assert scratch_dirs(tmp) == [], text
    assert gone(daemon_pid)


def test_ctrl_c_ends_a_demo_started_with_ctrl_c_ignored(tmpdir_env):
    """A demo that inherited SIGINT ignored ran on through Ctrl-C, two cycles, and left its
    directory behind (seen under a busy test run): it sets Ctrl-C for itself."""
    tmp, env = tmpdir_env
    code, text, daemon_pid = interrupt_once_running(
        start_demo(env, sigint_ignored=True), signal.SIGINT
    )
    assert code == 130, text
    assert "cycle 2 of 2" not in text
    assert scratch_dirs(tmp) == [], text
    assert gone(daemon_pid)


def test_an_interrupted_demo_asked_to_keep_says_where(tmpdir_env):
    tmp, env = tmpdir_env
    code, text, daemon_pid = interrupt_once_running(start_demo(env, "--keep"), signal.SIGINT)
    assert code == 130, text
    [kept] = scratch_dirs(tmp)
    assert f"The scratch directory is kept at {kept}" in text
    assert (kept / "repo" / ".git").is_dir() and (kept / "daemon.log").exists()
    assert gone(daemon_pid)


def test_a_directory_given_with_dir_is_the_users_and_stays(tmp_path, tmpdir_env):
    _, env = tmpdir_env
    code, text, _ = interrupt_once_running(
        start_demo(env, "--dir", str(tmp_path / "demo")), signal.SIGINT
    )
    assert code == 130, text
    assert f"The scratch directory is kept at {tmp_path / 'demo'}" in text
    assert git(tmp_path / "demo" / "repo", "log", "--format=%s") == (
        "A small statistics package with a few problems"
    )
