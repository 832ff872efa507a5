"""A small HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions format, for the
tests of the openai backend. Each test scripts what it answers: a reply, a status, garbage,
silence."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    content: str | None = None  # the assistant's text
    status: int = 200
    body: bytes | None = None  # raw body instead of a completion
    delay: float = 0.0


@dataclass
class ChatServer:
    models: list[str] = field(default_factory=lambda: ["coder"])
    answers: list[Answer] = field(default_factory=list)
    default: Answer | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    models_status: int = 200

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.endswith("/models"):
                    listing = {"data": [{"id": m, "object": "model"} for m in server.models]}
                    self._send(server.models_status, json.dumps(listing).encode())
                else:
                    self._send(404, b"{}")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length))
                request["authorization"] = self.headers.get("Authorization")
                server.requests.append(request)
                answer = server.answers.pop(0) if server.answers else server.default
                if answer is None:
                    self._send(500, b'{"error": "no scripted answer"}')
                    return
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.body is not None:
                    self._send(answer.status, answer.body)
                    return
                completion = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "model": request.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer.content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
                }
                self._send(answer.status, json.dumps(completion).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def generator(self, **settings: Any) -> dict[str, Any]:
        """The configuration entry of an `llm` generator that uses this server."""
        return {"llm": {"backend": "openai", "base_url": self.url, "model": "coder", **settings}}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
