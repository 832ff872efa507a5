"""A tiny HTTP receiver on 127.0.0.1, in a thread: what Apprise's generic JSON webhook
(`json://127.0.0.1:PORT/path`) posts, kept as it arrived."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """`with Receiver(status=200) as r:` — r.url for the configuration, r.messages the JSON
    bodies received (each request, a failed one too, counted in r.requests)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.messages: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.requests = 0
        self._changed = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer._changed:
                    outer.requests += 1
                    outer.raw.append(body)
                    if outer.status < 300:
                        outer.messages.append(json.loads(body))
                    outer._changed.notify_all()
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"json://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, requests: int, timeout: float = 60) -> None:
        """Until this many requests arrived (a limit against a hang, not a measurement)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.requests < requests:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"the receiver got {self.requests} request(s), not {requests}"
                    )
                self._changed.wait(left)


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
