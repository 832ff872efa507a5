"""A scripted daemon for snapshot tests: it speaks the real protocol over a real Unix socket,
but answers from fixed data, so the rendering it drives is the same on every run."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any


class ReplayDaemon:
    def __init__(self, path: Path, script: dict[str, Any]) -> None:
        self.path = path
        self.script = script
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.AbstractServer | None = None
        self.requests: list[dict[str, Any]] = []

    def __enter__(self) -> ReplayDaemon:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self.server is not None
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _start(self) -> None:
        self.server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def send(message: dict[str, Any]) -> None:
            writer.write(json.dumps(message).encode() + b"\n")

        while line := await reader.readline():
            request = json.loads(line)
            self.requests.append(request)
            op, args, rid = request["op"], request.get("args", {}), request["id"]
            if op == "hello":
                send({"id": rid, "ok": True, "result": self.script["hello"]})
            elif op == "subscribe":
                send(
                    {
                        "id": rid,
                        "ok": True,
                        "result": {"subscribed": True, "status": self.script["status"]},
                    }
                )
                for event in self.script.get("events", []):
                    send({"event": event})
            elif op == "status":
                send({"id": rid, "ok": True, "result": self.script["status"]})
            elif op == "history":
                rows = self.script["history"]
                page = rows[args.get("offset", 0) : args.get("offset", 0) + args.get("limit", 50)]
                send(
                    {
                        "id": rid,
                        "ok": True,
                        "result": {
                            "attempts": page,
                            "total": len(rows),
                            "offset": args.get("offset", 0),
                        },
                    }
                )
            elif op == "stats" and "stats" in self.script:
                stats = self.script["stats"]
                send({"id": rid, "ok": True, "result": {**stats, "target": args.get("target")}})
            elif op == "show":
                found = next(
                    (v for k, v in self.script["show"].items() if k.startswith(args["id"])), None
                )
                if found is None:
                    send(
                        {
                            "id": rid,
                            "ok": False,
                            "error": {
                                "type": "not_found",
                                "title": "No such attempt",
                                "message": f"no attempt {args['id']}",
                            },
                        }
                    )
                else:
                    send({"id": rid, "ok": True, "result": found})
            else:
                send(
                    {
                        "id": rid,
                        "ok": False,
                        "error": {
                            "type": "refused",
                            "title": "Replay",
                            "message": "the replay daemon decides nothing",
                        },
                    }
                )
            await writer.drain()
        writer.close()
