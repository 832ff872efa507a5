"""One request to the daemon on a fresh connection, with a plain blocking socket: what a CLI
command needs (`status`, `pause`, …), without asyncio, whose import alone costs more than the
rest of such a command (bench/import_time.py). Also the errors every client of the socket
raises, and what they say, shared with the asyncio client (client.py).

    result = oneshot.request(path, "status")
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path
from typing import Any

from overseer import __version__
from overseer.protocol import MAX_LINE_BYTES, PROTOCOL_VERSION, encode

CONNECT_TIMEOUT = 5.0


class DaemonUnavailable(Exception):
    """No daemon answers at the socket; the message says where we looked and why."""


class DaemonError(Exception):
    """The daemon refused or failed a request; carries the protocol's error fields."""

    def __init__(self, type: str, title: str, message: str) -> None:
        super().__init__(message)
        self.type = type
        self.title = title
        self.message = message


class ConnectionLost(DaemonUnavailable):
    pass


class DaemonForbidden(DaemonUnavailable):
    """A socket is there, but this user may not use it (not in the daemon's socket group).
    Commands that can work without the daemon still do; the message says what to ask for."""


def error_of(message: dict[str, Any]) -> DaemonError:
    """The DaemonError an error answer (or a refusal without an id) says."""
    err = message.get("error") or {}
    return DaemonError(
        err.get("type", "error"), err.get("title", "Error"), err.get("message", "unknown error")
    )


def lost() -> ConnectionLost:
    return ConnectionLost("the daemon closed the connection")


def check_socket(path: Path) -> None:
    """Raises what a person should read when there is no socket at `path` to connect to."""
    try:
        exists = path.exists()
    except PermissionError:  # its directory is closed to us: the daemon's group only
        raise DaemonForbidden(
            f"permission denied on {path.parent}: your user may not talk to the daemon "
            "there (ask to be added to its socket group, daemon.socket_group)"
        ) from None
    if not exists:
        raise DaemonUnavailable(f"no daemon is running: there is no socket at {path}")


def cannot_connect(path: Path, exc: BaseException) -> DaemonUnavailable:
    """What a failed connect to an existing socket means, for a person."""
    if isinstance(exc, PermissionError):
        return DaemonForbidden(
            f"permission denied on {path}: your user may not talk to this daemon "
            "(ask to be added to its socket group, daemon.socket_group)"
        )
    if isinstance(exc, ConnectionRefusedError | FileNotFoundError):
        return DaemonUnavailable(
            f"no daemon is running: {path} exists but nothing listens (a stale socket)"
        )
    return DaemonUnavailable(f"cannot connect to {path}: {exc}")


def request_line(request_id: int, op: str, args: dict[str, Any]) -> bytes:
    """The encoded request; one longer than the daemon reads is refused here, where it can be
    said (the daemon discards it unread, with no id to answer)."""
    line = encode({"id": request_id, "op": op, "args": args})
    if len(line) > MAX_LINE_BYTES:
        raise DaemonError(
            "line_too_long",
            "Request too long",
            f"the {op} request is {len(line):,} bytes; the daemon reads lines of at most "
            f"{MAX_LINE_BYTES:,}",
        )
    return line


def hello_args(name: str) -> dict[str, Any]:
    return {"protocol": PROTOCOL_VERSION, "client": f"{name}/{__version__}/{os.getpid()}"}


def request(
    socket_path: Path, op: str, *, timeout: float = 30.0, name: str = "overseer-cli", **args: Any
) -> Any:
    """Say hello, send one request, return its result (or raise what the daemon said)."""
    check_socket(socket_path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect(str(socket_path))
        except OSError as exc:
            raise cannot_connect(socket_path, exc) from None
        sock.settimeout(timeout)
        answers = sock.makefile("rb")
        refused: DaemonError | None = None  # why the daemon closes, if it said so first

        def ask(request_id: int, op: str, args: dict[str, Any]) -> Any:
            nonlocal refused
            line = request_line(request_id, op, args)
            with contextlib.suppress(OSError):  # closed on us: what it said first is still
                sock.sendall(line)  # there to be read (too many connections, say)
            while True:
                try:
                    raw = answers.readline()
                except TimeoutError:
                    raise DaemonError(
                        "timeout", "No answer", f"the daemon did not answer {op} in time"
                    ) from None
                except OSError:  # reset: closed on us
                    raw = b""
                if not raw:
                    raise refused or lost()
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(message, dict) or "event" in message:
                    continue
                if message.get("id") is None and isinstance(message.get("error"), dict):
                    refused = error_of(message)
                    continue
                if message.get("id") == request_id:
                    break
            if message.get("ok"):
                return message.get("result")
            raise error_of(message)

        ask(1, "hello", hello_args(name))
        return ask(2, op, args)
    finally:
        sock.close()
