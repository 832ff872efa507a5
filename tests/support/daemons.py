"""The daemon as a real process, as systemd runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from support.helpers import GIT_ENV, overseer


class DaemonProcess:
    def __init__(self, config_path, socket_path, env=None):
        self.socket = socket_path
        self.env = {**os.environ, **GIT_ENV, "OVERSEER_SOCKET": str(socket_path), **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "overseer", "daemon", "--config", str(config_path)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_ready(self, seconds=30):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited: {self.proc.stderr.read()}")
            if (
                self.socket.exists()
                and overseer("status", env={"OVERSEER_SOCKET": str(self.socket)}).returncode == 0
            ):
                return
            time.sleep(0.1)
        raise AssertionError("the daemon did not become ready")

    def cli(self, *args, timeout=120):
        return overseer(*args, env={"OVERSEER_SOCKET": str(self.socket)}, timeout=timeout)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err
