"""A local model never holds a stop up: cancelled, its process is killed at once, not at the end
of its time limit; and it does not outlive a daemon that is killed outright.

The model is the tiny generated one, in the real child process; a generation that takes its
time is that process stopped (SIGSTOP), which answers nothing until it is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from overseer.config import CTransformersSettings
from overseer.core.generate.llm.local_backend import LocalBackend
from overseer.core.plumbing import confine
from overseer.core.plumbing.stop import CycleStopped
from support.daemons import DaemonProcess
from support.helpers import daemon_config, rows

CHILD = "overseer.core.generate.llm.child"


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_dead(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return not alive(pid)


def model_children(parent: int) -> list[int]:
    """The model processes `parent` started (read from its threads' children lists: fast
    enough to catch one before it has loaded its model)."""
    found = []
    for children in Path(f"/proc/{parent}/task").glob("*/children"):
        try:
            pids = children.read_text().split()
        except OSError:
            continue
        for pid in pids:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if CHILD.encode() in cmdline:
                found.append(int(pid))
    return found


def settings(model: Path, **kw) -> CTransformersSettings:
    return CTransformersSettings(
        backend="ctransformers",
        model_path=model,
        context_length=256,
        max_new_tokens=12,
        **kw,
    )


def test_a_cancel_kills_the_model_at_once_not_at_its_time_limit(model):
    cancel = threading.Event()
    with LocalBackend(settings(model, time_limit=300)).session(cancel) as session:
        pid = session.proc.pid
        os.kill(pid, signal.SIGSTOP)  # a generation that takes its time
        timer = threading.Timer(0.3, cancel.set)
        timer.start()
        started = time.monotonic()
        with pytest.raises(
            CycleStopped, match="^cancelled while generating; the model's process was killed$"
        ):
            session.generate("hello world", seed=1)
        took = time.monotonic() - started
        timer.join()
    assert 0.2 < took < 10  # the cancel, not the 300 s limit
    assert wait_dead(pid, 0)  # killed and waited for before the raise


def test_the_model_process_dies_with_a_daemon_killed_outright(model, tmp_path):
    # A process holding a session, its model busy (stopped), then SIGKILLed: nothing of it
    # runs after that, so only the kernel can end the model's process (PR_SET_PDEATHSIG).
    script = tmp_path / "holder.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, signal
            from overseer.config import CTransformersSettings
            from overseer.core.generate.llm.local_backend import LocalBackend

            s = CTransformersSettings(
                backend="ctransformers", model_path={str(model)!r}, context_length=256
            )
            with LocalBackend(s).session() as session:
                os.kill(session.proc.pid, signal.SIGSTOP)
                print(session.proc.pid, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            """
        )
    )
    holder = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert holder.returncode == -signal.SIGKILL, holder.stderr
    pid = int(holder.stdout)
    try:
        assert wait_dead(pid), f"the model process {pid} outlived the process that started it"
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.usefixtures("warm_baseline")
def test_stopping_the_daemon_does_not_wait_for_a_generation(tmp_path, repo, sockdir, model):
    """SIGTERM while the model generates: the phase gets its grace (1 s), then the model's
    process is killed and the attempt closed as interrupted in GENERATE — well before the
    model's 300 s time limit, which is what the stop waited for before."""
    sock = sockdir / "run" / "s.sock"
    config, _ = daemon_config(
        tmp_path,
        repo,
        sock,
        policy="autonomy: full\n",
        daemon={"shutdown_grace": 1},
        generators=[
            {
                "llm": {
                    "backend": "ctransformers",
                    "model_path": str(model),
                    # A long reply (~0.5 s of the tiny model's time a round, after ~0.4 s to
                    # load): time enough to catch its process while it works, even when busy.
                    "context_length": 4096,
                    "max_new_tokens": 2000,
                    "time_limit": 300,
                }
            }
        ],
    )
    daemon = DaemonProcess(config, sock)
    child = None
    try:
        daemon.wait_ready()
        assert "cycle started" in daemon.cli("run-now").stdout
        deadline = time.monotonic() + 60
        while child is None and time.monotonic() < deadline:
            found = model_children(daemon.proc.pid)
            try:
                if found:
                    os.kill(found[0], signal.SIGSTOP)
                    child = found[0]
            except ProcessLookupError:
                pass  # it ended as it was found: the next round's, or the next attempt's
            if child is None:
                time.sleep(0.002)
        assert child is not None, "no model process started: " + daemon.output()[-2000:]
        started = time.monotonic()
        code = daemon.stop()
        took = time.monotonic() - started
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
        if child is not None and alive(child):
            os.kill(child, signal.SIGKILL)
    assert code == 0, daemon.output()
    assert took < 30, took
    [row] = rows(tmp_path / "state")
    assert row["status"] == "interrupted", row
    assert "interrupted in phase GENERATE" in row["failure_reason"], row["failure_reason"]
    assert "did not finish within 1 s" in row["failure_reason"], row["failure_reason"]
    assert wait_dead(child, 0)


@pytest.mark.skipif(not confine.abi()[0], reason=confine.abi()[1] or "Landlock")
def test_the_model_process_may_write_no_file(model, tmp_path):
    """A model file is data from elsewhere; native code a crafted one subverts finds nothing
    it may write. The session's child is set up so (no_new_privs is the visible half: this
    process has not got it), and the same set-up refuses a process any file it would write."""
    assert "NoNewPrivs:\t0" in Path("/proc/self/status").read_text()
    with LocalBackend(settings(model)).session() as session:
        status = Path(f"/proc/{session.proc.pid}/status").read_text()
        recorded = session.process()["confined"]
    assert "NoNewPrivs:\t1" in status
    assert recorded == f"writes no file (Landlock ABI {confine.abi()[0]})"
    from overseer.core.generate.llm.local_backend import _child_setup

    ruleset, prctl = confine.prepare([]), confine.libc_prctl()
    try:
        probe = subprocess.run(
            [sys.executable, "-c", f"open({str(tmp_path / 'x')!r}, 'w')"],
            preexec_fn=lambda: _child_setup(None, prctl, ruleset),
            capture_output=True,
            text=True,
        )
    finally:
        ruleset.close()
    assert probe.returncode == 1 and "PermissionError" in probe.stderr, probe.stderr
    assert not (tmp_path / "x").exists()
