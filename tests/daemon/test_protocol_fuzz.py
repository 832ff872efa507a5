"""The socket protocol under fuzzing: arbitrary bytes, arbitrary JSON and requests that look
right but are not never crash the daemon, always get a clear error, and change no state.

One real daemon process serves every example: a crash ends the process, where an in-process
daemon would only log an exception in a task and seem fine. Its state holds an attempt that
awaits approval, so junk approvals, rejections and rollbacks have something to hit. After each
example: the process runs, a fresh connection gets `ping` and `status` answered, the history
database passes `integrity_check` with every table as it was, and the daemon logged no error.

The examples are the same on every run (`derandomize`); OVERSEER_FUZZ_EXAMPLES=5000 runs
more, and OVERSEER_FUZZ_RANDOM=1 draws new ones (a failure prints how to reproduce it).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from overseer.protocol import MAX_LINE_BYTES, OPS, READ_OPS, WRITE_OPS
from support.daemons import DaemonProcess
from support.helpers import daemon_config, short_dir, snapshot
from support.load import HELLO, Subscriber, wait_idle

EXAMPLES = int(os.environ.get("OVERSEER_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="OVERSEER_FUZZ_RANDOM" not in os.environ,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# What a refusal may say; "internal" (a bug reached) is not among them.
CLEAR_ERRORS = {
    "bad_json",
    "bad_request",
    "unknown_op",
    "handshake_required",
    "protocol_mismatch",
    "line_too_long",
    "not_found",
    "refused",
    "busy",
}


@dataclass
class Fuzzed:
    daemon: DaemonProcess
    state: Path
    repo: Path
    attempt: str  # the id of the attempt awaiting approval
    tables: dict[str, str] = field(default_factory=dict)
    repo_before: dict[str, Any] = field(default_factory=dict)
    log_seen: int = 0

    @property
    def socket(self) -> Path:
        return self.daemon.socket

    def check(self) -> None:
        """The daemon is alive, answers, and its state is what it was."""
        code = self.daemon.proc.poll()
        assert code is None, f"the daemon exited ({code}): {self.new_log()}"
        ping, status = exchange(
            self.socket,
            HELLO + b'{"id": 1, "op": "ping"}\n{"id": 2, "op": "status"}\n',
            expect=3,
        )[1:]
        by_id = {a["id"]: a for a in (ping, status)}
        assert by_id[1] == {"id": 1, "ok": True, "result": {"pong": True}}
        status = by_id[2]["result"]
        assert status["state"] == "idle" and status["paused"] is None
        assert [p["improvement_id"] for p in status["pending_approvals"]] == [self.attempt]
        assert database_tables(self.state) == self.tables
        log = self.new_log()
        errors = [line for line in log.splitlines() if '"level": "error"' in line]
        assert not errors and "Traceback" not in log, log

    def new_log(self) -> str:
        data = self.daemon.log.read_bytes()
        new, self.log_seen = data[self.log_seen :], len(data)
        return new.decode(errors="replace")


def database_tables(state: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{state / 'history.sqlite3'}?mode=ro", uri=True)
    try:
        assert conn.execute("pragma integrity_check").fetchall() == [("ok",)]
        tables = [
            name
            for (name,) in conn.execute(
                "select name from sqlite_master where type = 'table' order by name"
            )
        ]
        return {
            name: hashlib.sha256(
                repr(conn.execute(f'select * from "{name}" order by rowid').fetchall()).encode()
            ).hexdigest()
            for name in tables
        }
    finally:
        conn.close()


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, sample):
    tmp = tmp_path_factory.mktemp("fuzz")
    with short_dir() as sockdir:
        repo = sample.copy(tmp / "proj")
        sample.warm(tmp / "state", repo)  # its tests at the base are not what is fuzzed
        # Supervised, real changes: a cycle leaves an attempt awaiting approval.
        config, _ = daemon_config(tmp, repo, sockdir / "s.sock")
        daemon = DaemonProcess(config, sockdir / "s.sock", log=tmp / "daemon.log", direct=True)
        try:

            async def prepare() -> str:
                await asyncio.to_thread(daemon.wait_ready)
                watcher = Subscriber(daemon.socket)
                await watcher.start()
                await watcher.client.request("run_now")
                await watcher.wait_for("CycleFinished")
                await wait_idle(watcher.client)
                [requested] = [e for e in watcher.events if e["kind"] == "ApprovalRequested"]
                await watcher.close()
                return requested["improvement_id"]

            fuzzed = Fuzzed(daemon, tmp / "state", repo, asyncio.run(prepare()))
            fuzzed.tables = database_tables(fuzzed.state)
            fuzzed.repo_before = snapshot(repo)
            fuzzed.check()
            yield fuzzed
            assert snapshot(repo) == fuzzed.repo_before
        finally:
            code = daemon.stop()
    assert code == 0, daemon.output()[-3000:]


# -- talking to it ----------------------------------------------------------------------------


def exchange(path: Path, payload: bytes, *, expect: int | None = None, read: bool = True):
    """Send `payload` on a new connection. Then either close at once (`read=False`), or
    close the writing side and read every answer until the daemon closes the connection
    (or, with `expect`, until that many answers came)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(path))
    # Sent from a thread: the daemon stops reading from a client that does not read its
    # answers, so writing everything before reading anything could wait forever.
    failed: list[OSError] = []

    def send() -> None:
        try:
            sock.sendall(payload)
            if read and expect is None:
                sock.shutdown(socket.SHUT_WR)
        except OSError as exc:  # the daemon closed after a protocol mismatch
            failed.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    if not read:
        sender.join(30)
        sock.close()
        return []
    data = b""
    messages: list[dict[str, Any]] = []
    try:
        while expect is None or len(messages) < expect:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
            *lines, data = data.split(b"\n")
            messages += [json.loads(line) for line in lines]
    finally:
        sender.join(30)
        sock.close()
    assert data == b"", f"the daemon sent a partial line: {data[:200]!r}"
    return [m for m in messages if "event" not in m]  # a fuzzed subscribe may bring events


def expected_answers(payload: bytes) -> int:
    """How many answers the daemon owes: one per complete line that is not blank, and one
    per line too long (whether or not it ended)."""
    *lines, last = payload.split(b"\n")
    count = sum(1 for line in lines if len(line) > MAX_LINE_BYTES or line.strip())
    return count + (len(last) > MAX_LINE_BYTES)


def assert_clear(answer: dict[str, Any]) -> None:
    assert set(answer) in ({"id", "ok", "result"}, {"id", "ok", "error"}), answer
    if not answer["ok"]:
        err = answer["error"]
        assert set(err) == {"type", "title", "message"}, answer
        assert all(isinstance(v, str) and v for v in err.values()), answer
        assert err["type"] in CLEAR_ERRORS, answer
        assert "Traceback" not in err["message"], answer


# -- strategies -------------------------------------------------------------------------------

FRAGMENTS = [
    HELLO,
    b"\n",
    b"\r\n",
    b" \t",
    b"\x00",
    b"\xff\xfe",
    b"\xef\xbb\xbf",  # a byte-order mark
    b"\xed\xa0\x80",  # a surrogate, UTF-8 encoded (invalid UTF-8)
    b"\xc3\x28",  # invalid UTF-8
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b"\\ud800",
    b'{"id": 1, "op": "ping"}',
    b'{"id": 2, "op": "status"}',
    b'{"id": 3, "op": "subscribe"}',
    b'{"id": 4, "op": "approve", "args": {"id": ',
    b'"op": "history", "args": {"offset": ',
    b"[" * 5000,
    b"9" * 5000,
    b"null",
    b"NaN",
]


@dataclass(frozen=True)
class Huge:
    """A line longer than the daemon reads, short to print when an example fails."""

    unit: bytes
    beyond: int  # bytes past the limit

    def __bytes__(self) -> bytes:
        return self.unit * ((MAX_LINE_BYTES + self.beyond) // len(self.unit) + 1)


junk = st.lists(st.one_of(st.binary(max_size=64), st.sampled_from(FRAGMENTS)), max_size=30)
huge = st.builds(
    Huge,
    st.binary(min_size=1, max_size=8).map(lambda b: b.replace(b"\n", b"x")),
    st.integers(1000, 300_000),
)
payloads = st.one_of(
    junk,
    st.builds(lambda before, line, after: [*before, line, *after], junk, huge, junk),
)

# Every JSON value Python's json reads: NaN and the infinities too, and lone surrogates,
# which a \u escape can spell.
text = st.text(st.characters(exclude_categories=()), max_size=20)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), text, st.integers(-(2**70), 2**70)
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(text, children, max_size=4)
    ),
    max_leaves=12,
)


def dumps(value: Any, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass") + b"\n"


ARG_NAMES = ["id", "reason", "limit", "offset", "target", "status", "search", "protocol", "client"]
args = st.one_of(
    json_values,
    st.dictionaries(st.one_of(st.sampled_from(ARG_NAMES), text), json_values, max_size=4),
    # Near misses: the right names with values of the wrong type, length or range.
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(text, st.integers(), st.just(""), st.just("g" * 65), st.just(" ")),
            "reason": st.one_of(json_values, st.just(""), st.just("r" * 2001)),
            "limit": st.one_of(st.integers(), st.floats(), text),
            "offset": st.one_of(st.integers(min_value=-(2**80), max_value=2**80), text),
            "status": st.one_of(st.lists(text), text, st.integers()),
            "protocol": st.one_of(st.integers(), text),
        },
    ),
)
requests = st.builds(
    lambda base, extra: {**extra, **base},
    st.fixed_dictionaries(
        {
            "id": st.one_of(st.integers(), text, json_values),
            "op": st.one_of(st.sampled_from(sorted(OPS)), text),
        },
        optional={"args": args},
    ),
    st.one_of(st.just({}), st.dictionaries(text, json_values, max_size=2)),
)


def harmless(request: dict[str, Any], attempt: str) -> dict[str, Any]:
    """The request, made invalid if it might be a valid decision: a fuzzer that happened to
    write `pause` or an approval of the waiting attempt would change state, rightly."""
    op = request.get("op")
    if not isinstance(op, str) or op not in WRITE_OPS:  # an op may be any JSON: a list, say
        return request
    args = request.get("args", {})
    if not isinstance(args, dict):
        return request
    target = args.get("id")
    might_resolve = isinstance(target, str) and attempt.startswith(target.strip().lower())
    if request["op"] in ("run_now", "pause", "resume") or might_resolve or target is None:
        return {**request, "args": {**args, "not_an_argument": True}}
    return request


# -- the tests --------------------------------------------------------------------------------


@FUZZ
@given(payload=payloads, greet=st.booleans(), read=st.booleans())
def test_arbitrary_bytes(fuzzed, payload, greet, read):
    payload = (HELLO if greet else b"") + b"".join(bytes(part) for part in payload)
    answers = exchange(fuzzed.socket, payload, read=read)
    if read:
        for answer in answers:
            assert_clear(answer)
        owed = expected_answers(payload)
        if any(a.get("error", {}).get("type") == "protocol_mismatch" for a in answers):
            assert len(answers) <= owed  # the daemon hangs up on a client it cannot talk to
        else:
            assert len(answers) == owed, answers[-5:]
    fuzzed.check()


@FUZZ
@given(value=json_values, ascii_only=st.booleans())
def test_arbitrary_json(fuzzed, value, ascii_only):
    if isinstance(value, dict):
        value = harmless(value, fuzzed.attempt)
    hello, answer = exchange(fuzzed.socket, HELLO + dumps(value, ascii_only))
    assert hello["ok"]
    assert_clear(answer)
    if answer["ok"]:
        assert value["op"] in READ_OPS
    elif not isinstance(value, dict):
        assert answer["error"]["type"] in ("bad_request", "bad_json")
    fuzzed.check()


@FUZZ
@given(batch=st.lists(requests, min_size=1, max_size=4), ascii_only=st.booleans())
def test_plausible_requests(fuzzed, batch, ascii_only):
    batch = [harmless(r, fuzzed.attempt) for r in batch]
    answers = exchange(fuzzed.socket, HELLO + b"".join(dumps(r, ascii_only) for r in batch))
    assert answers[0]["ok"]
    assert len(answers) == 1 + len(batch)
    for answer in answers[1:]:
        assert_clear(answer)
    if len(batch) == 1:
        [request], [answer] = batch, answers[1:]
        if answer["ok"]:
            assert request["op"] in READ_OPS
        well_formed = (
            isinstance(request["id"], int | str)
            and not isinstance(request["id"], bool)
            and set(request) <= {"id", "op", "args"}
            and isinstance(request.get("args", {}), dict)
        )
        if well_formed and request["op"] not in OPS:
            assert answer["error"]["type"] == "unknown_op" and answer["id"] == request["id"]
    fuzzed.check()


# -- what the fuzzer found, kept as plain tests -------------------------------------------------


def ask(fuzzed: Fuzzed, *lines: bytes) -> list[dict[str, Any]]:
    return exchange(fuzzed.socket, HELLO + b"".join(lines))[1:]


def test_deeply_nested_json_gets_an_answer(fuzzed):
    # It used to raise RecursionError in the request's task: no answer, ever. (Nested 30,000
    # deep, thirty times what Python's recursion allows, and within a request line's limit.)
    nested = b"[" * 30_000 + b"]" * 30_000
    assert len(nested) < MAX_LINE_BYTES - 100
    for line in (nested, b'{"id": 1, "op": "ping", "args": ' + nested + b"}"):
        [answer] = ask(fuzzed, line + b"\n")
        assert answer["error"]["type"] == "bad_json" and "deeply" in answer["error"]["message"]
    # Before the handshake too, where it used to end the connection.
    [answer] = exchange(fuzzed.socket, nested + b"\n")
    assert answer["error"]["type"] == "bad_json"
    fuzzed.check()


def test_lone_surrogates_are_refused_as_json(fuzzed):
    # `history` with one in `target` used to fail inside SQLite as an "internal error".
    [answer] = ask(fuzzed, b'{"id": 1, "op": "history", "args": {"target": "\\ud800"}}\n')
    assert answer["error"]["type"] == "bad_json" and "surrogate" in answer["error"]["message"]
    [answer] = ask(fuzzed, b'{"id": 1, "op": "history", "args": {"target": "\xed\xa0\x80"}}\n')
    assert answer["error"]["type"] == "bad_json"
    fuzzed.check()


def test_an_offset_beyond_what_sqlite_holds_is_a_bad_argument(fuzzed):
    [answer] = ask(fuzzed, b'{"id": 1, "op": "history", "args": {"offset": 1' + b"0" * 30 + b"}}\n")
    assert answer["error"]["type"] == "bad_request" and "offset" in answer["error"]["message"]
    fuzzed.check()


def test_requests_sent_before_the_client_closes_its_side_are_answered(fuzzed):
    # `printf '…' | nc -N -U socket`: the daemon used to drop answers not ready at the end of
    # the stream (status, history: anything that reads the database).
    answers = exchange(
        fuzzed.socket,
        HELLO + b"".join(b'{"id": %d, "op": "status"}\n' % n for n in range(1, 41)),
    )
    assert sorted(a["id"] for a in answers) == list(range(41))
    assert all(a["ok"] for a in answers)
    fuzzed.check()


def test_an_over_long_line_is_refused_before_it_ends_and_the_rest_discarded(fuzzed):
    # Half-sent lines used to be kept whole (200 of them took the daemon from 57 to 204 MB):
    # the refusal comes once the limit is passed, without waiting for the end of the line.
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(fuzzed.socket))
    try:
        sock.sendall(HELLO + b'{"id": 1, "op": "ping", "pad": "' + b"x" * (MAX_LINE_BYTES + 10))
        reader = sock.makefile("rb")
        hello, refused = json.loads(reader.readline()), json.loads(reader.readline())
        assert hello["ok"] and refused["error"]["type"] == "line_too_long", refused
        assert str(MAX_LINE_BYTES) in refused["error"]["message"]
        # More of the same line is discarded as it comes; the next line is a request again.
        sock.sendall(b"y" * (3 * MAX_LINE_BYTES) + b'"}\n{"id": 2, "op": "ping"}\n')
        assert json.loads(reader.readline()) == {"id": 2, "ok": True, "result": {"pong": True}}
    finally:
        sock.close()
    fuzzed.check()


def raw_answers(path: Path, lines: list[bytes]) -> list[bytes]:
    """The daemon's answers to `lines` (after a hello), as the bytes it wrote, in order."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(path))
    try:
        sock.sendall(HELLO + b"".join(line + b"\n" for line in lines))
        data = b""
        while data.count(b"\n") < len(lines) + 1:
            chunk = sock.recv(1 << 16)
            assert chunk, f"the daemon closed the connection: {data!r}"
            data += chunk
    finally:
        sock.close()
    return data.splitlines()[1:]


def strict_json(line: bytes) -> Any:
    """JSON as any reader takes it: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> Any:
        raise AssertionError(f"the daemon wrote {constant}, which is not JSON: {line!r}")

    return json.loads(line, parse_constant=refuse)


# The ids issue 14 saw come back changed (true → 1, false → 0, 1.0 → 1), and their kin.
IDS = [b"true", b"false", b"1.0", b"-0.5", b'"x"', b'""', b"null", b"0", str(2**70).encode()]


def test_request_ids_come_back_exactly_as_sent(fuzzed):
    answers = raw_answers(fuzzed.socket, [b'{"id": %s, "op": "ping"}' % raw for raw in IDS])
    assert answers == [b'{"id":%s,"ok":true,"result":{"pong":true}}' % raw for raw in IDS]
    # Refused requests too: the id, when there is one to read, lets the client match them.
    refused = [b'{"id": %s, "op": "format_disk"}' % raw for raw in IDS] + [
        b'{"id": %s, "op": "ping", "args": {"loud": true}}' % raw for raw in IDS
    ]
    for raw, line in zip(IDS + IDS, raw_answers(fuzzed.socket, refused), strict=True):
        assert line.startswith(b'{"id":%s,"ok":false,' % raw), line
        assert strict_json(line)["error"]["type"] in ("unknown_op", "bad_request")
    for line in raw_answers(fuzzed.socket, [b'{"id": true}', b'{"id": 1.0, "op": 7}']):
        assert strict_json(line)["error"]["type"] == "bad_request"
        assert line.startswith((b'{"id":true,', b'{"id":1.0,')), line
    fuzzed.check()


def test_an_id_json_cannot_write_back_is_refused_in_json(fuzzed):
    """Python reads NaN and 1e400 (infinity); written back they would not be JSON."""
    lines = [
        b'{"id": NaN, "op": "ping"}',
        b'{"id": 1e400, "op": "ping"}',
        b'{"id": [1], "op": "ping"}',
    ]
    lines.append(b'{"id": {"a": 1}, "op": "ping"}')
    for line in raw_answers(fuzzed.socket, lines):
        answer = strict_json(line)
        assert answer["id"] is None and answer["error"]["type"] == "bad_request", line
    fuzzed.check()
