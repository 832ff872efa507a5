"""The daemon as a real process, as systemd runs it: the one way the tests start `overseer
daemon` (the daemon in the test's own process is `run_daemon`, through the `daemon_options`
fixture)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from support.helpers import GIT_ENV, overseer

READY = '"message": "ready: '  # the daemon's own word that it serves (its log is JSON lines)


class DaemonProcess:
    """`overseer daemon --config CONFIG [ARGS]` as a child process, serving SOCKET.

    Its log (stdout and stderr together: JSON lines, as journald gets them) goes through a pipe
    that a thread here keeps reading, kept for `output()` and copied to `log` if one is given;
    a full disk (the drills' RLIMIT_FSIZE) cannot stop it, and a pipe nobody read would fill up
    and block the daemon's logging. With `direct=True` it goes straight into the file `log`
    instead, with nothing of this process in between: under load, and wherever a line must be
    in the file the moment the daemon wrote it (the fuzzer's check after each example).
    """

    def __init__(
        self,
        config: Path,
        socket_path: Path,
        *,
        log: Path | None = None,
        direct: bool = False,
        env: dict[str, str] | None = None,
        preexec: Any = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.socket = socket_path
        self.log = log
        self.env = {**os.environ, **GIT_ENV, "OVERSEER_SOCKET": str(socket_path)}
        self.env.pop("OVERSEER_FAULT", None)  # a fault point only where the test names one
        self.env.update(env or {})
        argv = [sys.executable, "-m", "overseer", "daemon", "--config", str(config), *args]
        self._lines: list[str] = []
        self._reader: threading.Thread | None = None
        if direct:
            if log is None:
                raise ValueError("direct=True writes the log to a file: name it with log=")
            with log.open("wb") as out:
                self.proc = subprocess.Popen(
                    argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=preexec
                )
        else:
            self.proc = subprocess.Popen(
                argv,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                preexec_fn=preexec,
            )
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        copy = self.log.open("wb") if self.log is not None else None
        try:
            for line in self.proc.stdout:
                if copy is not None:
                    copy.write(line)
                    copy.flush()
                self._lines.append(line.decode(errors="replace"))
        finally:
            if copy is not None:
                copy.close()

    def output(self) -> str:
        """Everything the daemon logged so far (all of it, once it has exited)."""
        if self._reader is None:
            assert self.log is not None
            return self.log.read_text(errors="replace")
        if self.proc.poll() is not None:
            self._reader.join(timeout=10)
        return "".join(self._lines)

    def wait_ready(self, seconds: float = 60) -> DaemonProcess:
        """Until the daemon says it is ready: it serves its socket, and has recovered, checked
        its generators and started its scheduler."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the daemon exited ({self.proc.returncode}):\n{self.output()[-3000:]}"
                )
            if READY in self.output():
                return self
            time.sleep(0.05)
        raise AssertionError(f"the daemon did not become ready:\n{self.output()[-3000:]}")

    def wait_for_log(self, text: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"the daemon never logged {text!r}:\n{self.output()}")

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The real command line, talking to this daemon."""
        return overseer(*args, env={"OVERSEER_SOCKET": str(self.socket)}, timeout=timeout)

    def request(self, op: str, **args: Any) -> Any:
        """One request over the socket, as the CLI makes it (without its start-up time); not
        from inside an event loop."""
        from overseer.client import call

        return asyncio.run(call(self.socket, op, **args))

    def run_now(self) -> None:
        assert self.request("run_now")["started"]

    def stop(self, sig: int = signal.SIGTERM, seconds: float = 60) -> int:
        """Send `sig` (unless it has exited) and wait for the exit; its exit status. Killed if
        it does not stop in time, and that fails the test."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"the daemon did not stop within {seconds} s:\n{self.output()[-3000:]}"
            ) from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def wait_killed(self, seconds: float = 60) -> None:
        """A fault point fired: the daemon died of SIGKILL (not of anything else)."""
        try:
            self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the daemon was not killed:\n{self.output()}") from None
        assert self.proc.returncode == -signal.SIGKILL, self.output()

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def cpu_seconds(self) -> float:
        """CPU time the daemon itself used so far (not the commands a cycle runs)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
