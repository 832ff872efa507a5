"""The real `overseer tui` process in a real terminal (tmux), against a real daemon process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from support.daemons import DaemonProcess
from support.helpers import daemon_config, git

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    def __init__(self, command: str, width: int = 120, height: int = 36) -> None:
        self.server = f"overseer-test-{uuid.uuid4().hex[:8]}"  # a private tmux server
        self.name = "tui"
        # tmux may start the command at 80x24 and resize the window an instant later; a
        # program that has not yet installed its SIGWINCH handler would miss that.
        subprocess.run(
            [
                "tmux",
                "-L",
                self.server,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                self.name,
                "-x",
                str(width),
                "-y",
                str(height),
                f"sleep 0.5; exec {command}",
            ],
            check=True,
        )

    def screen(self) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.server, "capture-pane", "-p", "-t", self.name],
            capture_output=True,
            text=True,
        )
        return out.stdout

    def send(self, *keys: str) -> None:
        subprocess.run(["tmux", "-L", self.server, "send-keys", "-t", self.name, *keys], check=True)

    def wait_for(self, text: str, seconds: float = 60) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the screen shows:\n{self.screen()}")

    def alive(self) -> bool:
        return (
            subprocess.run(
                ["tmux", "-L", self.server, "has-session", "-t", self.name], capture_output=True
            ).returncode
            == 0
        )

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.server, "kill-server"], capture_output=True)


@pytest.mark.usefixtures("warm_baseline")
def test_the_real_tui_in_a_terminal(tmp_path, repo, sockdir):
    sock = sockdir / "run" / "s.sock"
    config, _ = daemon_config(tmp_path, repo, sock)
    daemon = DaemonProcess(config, sock)
    tmux = None
    try:
        daemon.wait_ready()
        tmux = Tmux(f"{sys.executable} -m overseer tui --socket {sock}")
        tmux.wait_for("● connected")
        assert "SUPERVISED" in tmux.screen() and "No cycle yet" in tmux.screen()
        tmux.send("n")
        shown = tmux.wait_for("1 awaiting a decision")
        assert "Why this risk and gate" in shown, shown
        assert "EVALUATE" in shown and "awaiting approval" in shown, shown
        tmux.send("a")
        tmux.wait_for("Approve this change?")
        tmux.send("Enter")
        tmux.wait_for("promoted to main")
        history = json.loads(daemon.cli("history", "--json").stdout)
        assert history[0]["status"] == "promoted"
        assert git(repo, "rev-parse", "main") == history[0]["git_commit_hash"]
        tmux.send("q")
        deadline = time.monotonic() + 10
        while tmux.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not tmux.alive()  # the TUI exited; the daemon keeps running
        assert daemon.proc.poll() is None
    finally:
        if tmux is not None:
            tmux.kill()
        code = daemon.stop()
    assert code == 0, daemon.output()
