"""The control protocol between the daemon and its clients (CLI, TUI): one module, no core.

Newline-delimited JSON over a Unix socket. The client speaks first:

    → {"id": 1, "op": "hello", "args": {"protocol": 1, "client": "overseer-cli"}}
    ← {"id": 1, "ok": true, "result": {"protocol": 1, "server": "overseer 0.1.0",
                                        "user": "alice", "uid": 1000, "approver": true}}

then requests, each answered with its id echoed:

    → {"id": 2, "op": "approve", "args": {"id": "7f3a2c1b", "reason": "reviewed"}}
    ← {"id": 2, "ok": false, "error": {"type": "not_authorized", "title": "Not an approver",
                                        "message": "…"}}

and, after `subscribe`, events streamed without an id:

    ← {"event": {"kind": "PhaseStarted", "at": "…", "phase": "ANALYZE", …}}

Events are past tense (`PhaseStarted`, `ChangePromoted`); commands are imperative (`approve`,
`pause`, `run_now`). A subscriber too slow to keep up loses events, and is told how many with
an `EventsDropped` event, rather than slowing the cycle or anyone else.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any, Literal

PROTOCOL_VERSION = 1
# The longest request line the daemon reads. The largest real request (a reason of 2,000
# characters, each escaped as a surrogate pair) is under 25 KB; a partial line costs the daemon
# up to twice this per connection until it is refused, so it is kept small.
MAX_LINE_BYTES = 64 * 1024
SQLITE_INT_MAX = 2**63 - 1  # a larger number cannot be a query parameter

# Who may do what: reading is for anyone who can connect; deciding is for approvers.
READ_OPS = frozenset(
    {"hello", "ping", "status", "history", "show", "stats", "subscribe", "unsubscribe"}
)
WRITE_OPS = frozenset({"run_now", "pause", "resume", "approve", "reject", "rollback", "retry"})
OPS = READ_OPS | WRITE_OPS

# A request's id: any JSON scalar, answered exactly as sent (true stays true, 1.0 stays 1.0).
RequestId = bool | int | float | str | None


def is_request_id(value: Any) -> bool:
    """Whether `value` can be a request's id: a JSON scalar that JSON can write back (NaN and
    the infinities, which Python's json reads, it cannot)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, bool | int | str)


class ProtocolError(Exception):
    """An error to send back: a machine-readable type, a short title, a helpful message."""

    def __init__(self, type: str, title: str, message: str) -> None:
        super().__init__(message)
        self.type = type
        self.title = title
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "title": self.title, "message": self.message}


@functools.cache
def models() -> tuple[type[Any], dict[str, type[Any]]]:
    """The request model and each op's argument model, built on first use: a client that only
    sends requests never pays for importing pydantic (it keeps `overseer status` quick)."""
    from typing import Annotated

    from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

    from overseer.vocabulary import MAX_REASON_CHARS

    class _Args(BaseModel):
        model_config = ConfigDict(extra="forbid")

    class HelloArgs(_Args):
        protocol: int
        client: str = "unknown"

    class NoArgs(_Args):
        pass

    class AttemptArgs(_Args):
        id: str = Field(min_length=1, max_length=64)

    class ApproveArgs(AttemptArgs):
        reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)

    class RejectArgs(AttemptArgs):
        reason: str = Field(min_length=1, max_length=MAX_REASON_CHARS)

    class RollbackArgs(AttemptArgs):
        reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)

    class RetryArgs(AttemptArgs):
        reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)

    class PauseArgs(_Args):
        reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)

    class HistoryArgs(_Args):
        limit: int = Field(default=50, ge=1, le=1000)
        offset: int = Field(default=0, ge=0, le=SQLITE_INT_MAX)
        target: str | None = None
        status: list[str] | None = None
        search: str | None = Field(default=None, max_length=200)

    class StatsArgs(_Args):
        # A target's name (None: all targets); one the history has never seen is refused
        # by the application, which knows the names.
        target: str | None = Field(default=None, min_length=1, max_length=200)

    class Request(BaseModel):
        model_config = ConfigDict(extra="forbid")

        # Any JSON scalar, kept exactly as sent (no 1.0 → 1, no true → 1): the answer
        # carries the id the client wrote. Required, though it may be null.
        id: (
            StrictBool
            | StrictInt
            | Annotated[float, Field(strict=True, allow_inf_nan=False)]
            | StrictStr
            | None
        )
        op: str
        args: dict[str, Any] = Field(default_factory=dict)

    return Request, {
        "hello": HelloArgs,
        "ping": NoArgs,
        "status": NoArgs,
        "history": HistoryArgs,
        "show": AttemptArgs,
        "stats": StatsArgs,
        "subscribe": NoArgs,
        "unsubscribe": NoArgs,
        "run_now": NoArgs,
        "pause": PauseArgs,
        "resume": NoArgs,
        "approve": ApproveArgs,
        "reject": RejectArgs,
        "rollback": RollbackArgs,
        "retry": RetryArgs,
    }


def decode_request(line: bytes) -> tuple[Any, Any]:
    """Parse one line into a request and its validated arguments, or raise ProtocolError.

    The error carries the request id when one could be read, so the client can match it.
    """
    try:
        data = json.loads(line)
        # A \ud800 escape parses into a string no database or file can hold: refuse it here,
        # not deep inside whatever the request would have done with it.
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise ProtocolError(
            "bad_json",
            "Not JSON",
            f"the line holds a lone surrogate ({exc.object[exc.start : exc.end]!r}), "
            "which is not a Unicode character",
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("bad_json", "Not JSON", f"the line is not valid JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError(
            "bad_json", "Not JSON", "the line nests arrays or objects too deeply to be read"
        ) from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_request", "Bad request", "a request is a JSON object")
    from pydantic import ValidationError

    request_model, arg_models = models()
    try:
        request = request_model.model_validate(data)
    except ValidationError as exc:
        refused = ProtocolError("bad_request", "Bad request", _explain(exc))
        if "id" in data and is_request_id(data["id"]):  # the client can still match it
            raise RequestError(data["id"], refused) from None
        raise refused from None
    if request.op not in OPS:
        raise RequestError(
            request.id,
            ProtocolError(
                "unknown_op",
                "Unknown operation",
                f"unknown op {request.op!r}; known: {', '.join(sorted(OPS))}",
            ),
        )
    try:
        args = arg_models[request.op].model_validate(request.args)
    except ValidationError as exc:
        raise RequestError(
            request.id,
            ProtocolError("bad_request", f"Bad arguments for {request.op}", _explain(exc)),
        ) from None
    return request, args


class RequestError(Exception):
    """A ProtocolError about a request whose id is known."""

    def __init__(self, request_id: RequestId, error: ProtocolError) -> None:
        super().__init__(error.message)
        self.request_id = request_id
        self.error = error


def _explain(exc: Any) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "request"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


def ok(request_id: RequestId, result: Any) -> dict[str, Any]:
    return {"id": request_id, "ok": True, "result": result}


def error(request_id: RequestId, err: ProtocolError) -> dict[str, Any]:
    return {"id": request_id, "ok": False, "error": err.to_dict()}


def event(data: dict[str, Any]) -> dict[str, Any]:
    return {"event": data}


Kind = Literal["response", "event"]


def kind_of(message: dict[str, Any]) -> Kind:
    return "event" if "event" in message else "response"
