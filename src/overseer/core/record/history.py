"""The provenance record (RECORD): one SQLite row per attempt, written as the cycle goes.

Tables: `improvements` (one row per attempt, every column the original procedure kept plus
status and provenance), `phase_events` (every event, in order), `approvals` (who decided what,
when and why), `cycles` (one row per cycle, including cycles that found nothing to do),
`baselines` (test results per target commit, so an unchanged HEAD is not tested twice) and
`outcomes` (training rows for LEARN).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import sys
import threading
import typing
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from overseer.base.clock import Clock, iso
from overseer.core.plumbing.secrets import Redactor
from overseer.vocabulary import (
    RETRIED,
    AttemptRow,
    AttemptStatus,
    CycleStatus,
    Event,
    LastCycle,
    Pause,
)


def _import_sqlite_utils() -> ModuleType:
    """sqlite-utils, without the numpy it imports only to map numpy types to column types.

    We never store numpy values, and numpy's import is ~60 ms (more on a busy machine) of every
    `overseer` command's start-up (bench/cycle_overhead.py). A None in sys.modules makes that
    optional import fail as if numpy were absent; it is removed at once, so the predictor can
    import numpy later. The daemon imports this at start-up, before any other thread runs.
    """
    if "numpy" in sys.modules:
        import sqlite_utils

        return sqlite_utils
    # None in sys.modules is Python's documented way to make an import fail; typeshed types
    # the values as modules only.
    sys.modules["numpy"] = None  # type: ignore[assignment]
    try:
        import sqlite_utils
    finally:
        del sys.modules["numpy"]
    return sqlite_utils


sqlite_utils = _import_sqlite_utils()

log = logging.getLogger(__name__)

# 2: improvements.rounds and repair_rounds_used, outcomes.repair_rounds_used (repair rounds).
# A database of an earlier version gains the columns it lacks when a writer opens it.
SCHEMA_VERSION = 2
TABLES = (
    "meta",
    "improvements",
    "cycles",
    "phase_events",
    "approvals",
    "baselines",
    "outcomes",
    "predictor",
    "test_durations",
    "control",
)
# Indexes for what is asked often on long histories: the waiting ones (status), the
# rate-limit spend (target, recent start), pages newest first (start).
INDEXES = (
    ("improvements", ["target", "status"]),
    ("improvements", ["status", "started_at"]),
    ("improvements", ["target", "started_at"]),
    ("improvements", ["fingerprint"]),
    ("improvements", ["started_at"]),
    ("phase_events", ["improvement_id"]),
    ("phase_events", ["cycle_id"]),
    ("approvals", ["improvement_id"]),
    ("test_durations", ["target", "test_id", "at"]),
    ("outcomes", ["target_file"]),
    ("outcomes", ["generator", "finding_kind"]),
)


def _sqlite_type(hint: Any) -> type:
    """The column type SQLite stores for a field of AttemptRow (JSON columns are text)."""
    for kind in (int, float, str):
        if hint is kind or kind in typing.get_args(hint):
            return kind
    return str


# The columns, spelled once: vocabulary.AttemptRow.
IMPROVEMENT_COLUMNS: dict[str, type] = {
    name: _sqlite_type(hint) for name, hint in typing.get_type_hints(AttemptRow).items()
}

# Every table, its columns and its primary key (the improvements' columns are AttemptRow's).
SCHEMA: dict[str, tuple[dict[str, type], str | tuple[str, ...]]] = {
    "meta": ({"key": str, "value": str}, "key"),
    "improvements": (IMPROVEMENT_COLUMNS, "improvement_id"),
    "cycles": (
        {
            "cycle_id": str, "target": str, "target_path": str, "branch": str, "status": str,
            "dry_run": int, "parameters": str, "analysis": str, "summary": str,
            "started_at": str, "finished_at": str,
        },
        "cycle_id",
    ),
    "phase_events": (
        {
            "id": int, "at": str, "kind": str, "cycle_id": str, "improvement_id": str,
            "phase": str, "duration": float, "outcome": str, "summary": str, "detail": str,
        },
        "id",
    ),
    "approvals": (
        {
            "id": int, "improvement_id": str, "decision": str, "user": str, "uid": int,
            "at": str, "reason": str,
        },
        "id",
    ),
    "baselines": (
        {"target": str, "commit_sha": str, "command_key": str, "created_at": str, "results": str},
        ("target", "commit_sha", "command_key"),
    ),
    "outcomes": (
        {
            "improvement_id": str, "at": str, "generator": str, "finding_kind": str,
            "change_type": str, "target_file": str, "kept": int, "features": str,
            "repair_rounds_used": int,
        },
        "improvement_id",
    ),
    "predictor": (
        {
            "version": int, "trained_at": str, "rows": int, "kept": int, "seconds": float,
            "path": str, "brier": float, "scored": int, "reliability": str,
        },
        "version",
    ),
    "test_durations": (
        {"target": str, "commit_sha": str, "test_id": str, "duration": float, "at": str},
        ("target", "commit_sha", "test_id"),
    ),
    "control": ({"key": str, "value": str, "at": str}, "key"),
}  # fmt: skip
assert set(SCHEMA) == set(TABLES)

JSON_COLUMNS = {
    "similar_rejections",
    "generation",
    "watch",
    "policy_facts",
    "verdict_detail",
    "analysis_results",
    "finding",
    "files_changed",
    "risk_reasons",
    "evaluation",
    "phase_timings",
    "analysis",
    "parameters",
    "detail",
    "features",
    "reliability",
    "results",
    "rounds",
}


class HistoryError(Exception):
    pass


class UnknownAttempt(HistoryError):
    pass


class HistoryUnavailable(HistoryError):
    """The database cannot be used now: another process holds its lock, the disk is full, an
    I/O error. The message names the file and says which."""


# SQLite's errors that say the database cannot be used now, as opposed to a wrong query.
_UNAVAILABLE = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_READONLY",
    "SQLITE_CANTOPEN",
    "SQLITE_CORRUPT",
    "SQLITE_NOTADB",
)


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for key, value in row.items():
        if key in JSON_COLUMNS and isinstance(value, str):
            with contextlib.suppress(ValueError):  # a plain string stays a string
                row[key] = json.loads(value)
    return row


def _attempt(row: dict[str, Any]) -> AttemptRow:
    """A stored attempt, typed at the edge: decoded JSON columns, the status an AttemptStatus
    (a str, so it compares and serialises as before)."""
    row = _decode(row)
    row["status"] = AttemptStatus(row["status"])
    return typing.cast(AttemptRow, row)


def _stored(value: Any) -> Any:
    """A value as sqlite-utils would store it: lists and dicts as JSON text."""
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=repr)
    return value


class History:
    """Thread-safe access to the history database of one state directory."""

    def __init__(
        self,
        path: Path,
        clock: Clock,
        redactor: Redactor | None = None,
        *,
        busy_timeout: float = 30.0,
        read_only: bool = False,
    ) -> None:
        """`read_only`: for the commands that only read (history, show, status, stats). They
        then work for a reader who may not write the state directory (its group, say), and
        never wait for or take a write lock."""
        self.path = path
        self.read_only = read_only
        self.clock = clock
        self.redactor = redactor or Redactor([])
        self.busy_timeout = busy_timeout  # how long a write waits for another process's lock
        self._lock = threading.RLock()
        # Why the last write failed (locked, disk full), until a write succeeds again: the
        # daemon's status shows it, and events say it once rather than once each.
        self.problem: str | None = None
        self._events_lost = 0
        if read_only:
            conn = self._open_read_only(path, busy_timeout)
            self.db = sqlite_utils.Database(conn)
            if not self._schema_is_current():
                conn.close()
                raise HistoryUnavailable(
                    f"the history database {path} was written by another version of overseer "
                    "(or not at all yet); a command that writes it first brings it up to date"
                )
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, timeout=busy_timeout)
        self.db = sqlite_utils.Database(conn)
        try:
            self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self.db.enable_wal()
            # In WAL mode NORMAL loses nothing when the process dies (SIGKILL included); only a
            # power cut could lose the last transactions. It spares an fsync per event.
            self.db.execute("PRAGMA synchronous = NORMAL")
            self._create_schema()
        except HistoryUnavailable:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise self._unavailable(exc) from exc

    def _open_read_only(self, path: Path, busy_timeout: float) -> sqlite3.Connection:
        try:
            return _connect_read_only(path, busy_timeout)
        except sqlite3.Error as exc:
            error = exc
        # No write-ahead log beside it: no writer has the database open (a writer keeps the
        # -wal file until its last connection closes: a daemon that stopped cleanly leaves
        # none), so the file holds the whole history. SQLite would still create the -shm file
        # to read it, which a reader who may not write the directory cannot (the README's
        # 0750 state directory): it reads the file as it is instead. A writer that starts
        # during the read may make this one command fail, never the database.
        if not path.with_name(path.name + "-wal").exists():
            try:
                return _connect_read_only(path, busy_timeout, immutable=True)
            except sqlite3.Error:
                pass
        name = getattr(error, "sqlite_errorname", "") or type(error).__name__
        raise HistoryUnavailable(
            f"the history database {path} cannot be read ({name}: {error}): "
            "ask its owner for read access to it and its directory"
        ) from error

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()

    def _unavailable(self, exc: sqlite3.Error) -> HistoryError:
        """What a failed statement means for the user, naming the file."""
        name = getattr(exc, "sqlite_errorname", "") or type(exc).__name__
        if not name.startswith(_UNAVAILABLE):
            raise exc  # a mistake of ours, not a state of the database: the traceback matters
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            what = f"is locked by another process (waited {self.busy_timeout:g} s)"
        elif name == "SQLITE_FULL":
            what = "cannot be written: the disk is full"
        else:
            what = "cannot be written"
        return HistoryUnavailable(f"the history database {self.path} {what} ({name}: {exc})")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction; a database that cannot be written raises HistoryUnavailable."""
        with self._lock:
            try:
                with self.db.conn:
                    yield
            except sqlite3.Error as exc:
                error = self._unavailable(exc)
                self.problem = str(error)
                raise error from exc
            self.problem = None

    def _schema_is_current(self) -> bool:
        """Whether every table and index exists at this version: then opening the database
        writes nothing, so reading it works while another process holds its write lock."""
        names = {r[0] for r in self.db.execute("select name from sqlite_master").fetchall()}
        wanted = set(TABLES) | {"idx_" + "_".join([t, *cols]) for t, cols in INDEXES}
        if not wanted <= names:
            return False
        row = self.db.execute("select value from meta where key = 'schema_version'").fetchone()
        return row is not None and row[0] == str(SCHEMA_VERSION)

    def _create_schema(self) -> None:
        db = self.db
        if self._schema_is_current():
            return
        with self.transaction():
            for table, (columns, pk) in SCHEMA.items():
                db[table].create(columns, pk=pk, if_not_exists=True)
                # A table of an earlier version: the columns added since, empty in its rows.
                have = db[table].columns_dict
                for name, kind in columns.items():
                    if name not in have:
                        db[table].add_column(name, kind)
            for table, indexed in INDEXES:
                db[table].create_index(indexed, if_not_exists=True)
            db["meta"].upsert({"key": "schema_version", "value": str(SCHEMA_VERSION)}, pk="key")

    def now(self) -> str:
        return iso(self.clock.now())

    # -- cycles ---------------------------------------------------------------------------

    def clean(self, fields: dict[str, Any]) -> dict[str, Any]:
        """What may be written: every value with secrets redacted."""
        return typing.cast(dict[str, Any], self.redactor.value(fields))  # a dict stays a dict

    def start_cycle(self, **fields: Any) -> None:
        with self.transaction():
            self.db["cycles"].insert(
                self.clean({"started_at": self.now(), "status": CycleStatus.RUNNING, **fields})
            )

    def finish_cycle(self, cycle_id: str, **fields: Any) -> None:
        with self.transaction():
            self.db["cycles"].update(cycle_id, self.clean({"finished_at": self.now(), **fields}))

    def get_cycle(self, cycle_id: str) -> dict[str, Any]:
        with self._lock:
            return _decode(dict(self.db["cycles"].get(cycle_id)))

    def last_cycle(self, target: str | None = None) -> LastCycle | None:
        """The last cycle that finished (on `target`, or on any): when and how it ended, and
        why the target could not be evaluated if that is how."""
        where, params = ("and target = ? ", [target]) if target is not None else ("", [])
        with self._lock:
            found = list(
                self.db.query(
                    f"select * from cycles where finished_at is not null and status != ? {where}"
                    "order by finished_at desc, rowid desc limit 1",
                    [CycleStatus.RUNNING, *params],
                )
            )
        if not found:
            return None
        row = _decode(dict(found[0]))
        failure = row.get("analysis") if row["status"] == CycleStatus.FAILED else None
        failure = failure if isinstance(failure, dict) else {}
        return {
            "cycle_id": row["cycle_id"],
            "target": row["target"],
            "started_at": row["started_at"],
            "finished_at": row["finished_at"],
            "status": row["status"],
            "summary": row.get("summary"),
            "dry_run": bool(row.get("dry_run")),
            "not_evaluable": failure.get("not_evaluable"),
            "command": failure.get("command"),
            "output_tail": failure.get("output_tail"),
        }

    # -- attempts -------------------------------------------------------------------------

    def create_attempt(self, **fields: Any) -> None:
        row = {
            "started_at": self.now(),
            "status": AttemptStatus.RUNNING,
            "was_deployed": 0,
            "was_rolled_back": 0,
        }
        row.update(fields)
        with self.transaction():
            self.db["improvements"].insert(self.clean(row))

    def update_attempt(self, improvement_id: str, **fields: Any) -> None:
        """Write columns of an attempt, never its status: that moves through move()."""
        unknown = set(fields) - set(IMPROVEMENT_COLUMNS)
        if unknown:
            raise HistoryError(f"not columns of improvements: {sorted(unknown)}")
        if "status" in fields:
            raise HistoryError("an attempt's status changes only through core/lifecycle.py move()")
        with self.transaction():
            self.db["improvements"].update(improvement_id, self.clean(fields))

    def move(self, improvement_id: str, before: str, after: AttemptStatus, **fields: Any) -> bool:
        """Write the new status (and `fields`) if the attempt is still `before`; False if it
        is not (another process moved it first). Only core/lifecycle.py calls this."""
        unknown = set(fields) - set(IMPROVEMENT_COLUMNS)
        if unknown:
            raise HistoryError(f"not columns of improvements: {sorted(unknown)}")
        values = self.clean({**fields, "status": after.value})
        names = list(values)
        with self.transaction():
            cursor: sqlite3.Cursor = self.db.execute(
                f"update improvements set {', '.join(f'[{n}] = ?' for n in names)} "
                "where improvement_id = ? and status = ?",
                [_stored(values[n]) for n in names] + [improvement_id, before],
            )
        return cursor.rowcount == 1

    def resolve_id(self, prefix: str) -> str:
        """A full attempt id from a unique prefix (like git's abbreviated hashes)."""
        prefix = prefix.strip().lower()
        if not prefix or not all(c in "0123456789abcdef" for c in prefix):
            raise UnknownAttempt(
                f"{prefix!r} is not an attempt id (hexadecimal, see `overseer history`)"
            )
        with self._lock:
            rows = list(
                self.db.query(
                    "select improvement_id from improvements where improvement_id like ? limit 3",
                    [prefix + "%"],
                )
            )
        if not rows:
            raise UnknownAttempt(f"no attempt {prefix} in {self.path}")
        if len(rows) > 1:
            raise UnknownAttempt(f"attempt id {prefix} is ambiguous; give more characters")
        found: str = rows[0]["improvement_id"]
        return found

    def get(self, improvement_id: str) -> AttemptRow:
        with self._lock:
            try:
                return _attempt(dict(self.db["improvements"].get(improvement_id)))
            except sqlite_utils.db.NotFoundError:
                raise UnknownAttempt(f"no attempt {improvement_id} in {self.path}") from None

    @staticmethod
    def _where(
        target: str | None, statuses: Iterable[str] | None, search: str | None
    ) -> tuple[str, list[Any]]:
        where, params = [], []
        if target is not None:
            where.append("target = ?")
            params.append(target)
        if statuses:
            chosen = [str(s) for s in statuses]
            where.append(f"status in ({', '.join('?' * len(chosen))})")
            params.extend(chosen)
        if search:
            where.append(
                "(improvement_id like ? or target_file like ? or summary like ? "
                "or finding_kind like ? or change_type like ? or status like ?)"
            )
            params.extend([f"%{search}%"] * 6)
        return (" where " + " and ".join(where)) if where else "", params

    def attempts(
        self,
        *,
        target: str | None = None,
        statuses: Iterable[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = True,
        search: str | None = None,
    ) -> list[AttemptRow]:
        where, params = self._where(target, statuses, search)
        order = "desc" if newest_first else "asc"
        sql = f"select * from improvements{where} order by started_at {order}, rowid {order}"
        if limit is not None:
            sql += " limit ? offset ?"
            params.extend([limit, offset])
        with self._lock:
            return [_attempt(dict(r)) for r in self.db.query(sql, params)]

    def count_attempts(
        self,
        *,
        target: str | None = None,
        statuses: Iterable[str] | None = None,
        search: str | None = None,
    ) -> int:
        where, params = self._where(target, statuses, search)
        with self._lock:
            row = next(self.db.query(f"select count(*) as n from improvements{where}", params))
        return int(row["n"])

    def unclosed(self, target: str, statuses: Collection[str]) -> list[str]:
        """Attempts in `statuses` that were never closed (no `completed_at`), oldest first."""
        with self._lock:
            return [
                r["improvement_id"]
                for r in self.db.query(
                    f"select improvement_id from improvements where target = ? and status in "
                    f"({', '.join('?' * len(statuses))}) and completed_at is null "
                    "order by started_at, rowid",
                    [target, *statuses],
                )
            ]

    def fingerprint_statuses(self, fingerprint: str) -> list[str]:
        return [status for _, status in self.fingerprint_attempts(fingerprint)]

    def fingerprint_attempts(self, fingerprint: str) -> list[tuple[str, str]]:
        """(id, status) of the attempts known by `fingerprint`, oldest first, but those a
        human opened again (`overseer retry`): they no longer decide whether it is tried."""
        with self._lock:
            return [
                (r["improvement_id"], r["status"])
                for r in self.db.query(
                    "select improvement_id, status from improvements where fingerprint = ? "
                    "and improvement_id not in "
                    "(select improvement_id from approvals where decision = ?) "
                    "order by started_at, rowid",
                    [fingerprint, RETRIED],
                )
            ]

    def count_changes_since(self, target: str, since: datetime) -> int:
        """Real (not dry-run) attempts that got past SAFETY since `since`: the rate-limit spend."""
        with self._lock:
            row = next(
                self.db.query(
                    "select count(*) as n from improvements where target = ? and dry_run = 0 "
                    "and started_at >= ? and git_commit_hash is not null",
                    [target, iso(since)],
                )
            )
        return int(row["n"])

    def last_rollback(self, target: str) -> str | None:
        with self._lock:
            row = next(
                self.db.query(
                    "select max(rolled_back_at) as at from improvements where target = ?", [target]
                )
            )
        at: str | None = row["at"]
        return at

    # -- events and approvals -------------------------------------------------------------

    def record_event(self, event: Event) -> None:
        if event.kind == "PhaseProgress":
            return  # live-only: a busy test run would write several rows a second
        data = event.to_dict()
        row = {
            "at": data.pop("at"),
            "kind": data.pop("kind"),
            "cycle_id": data.pop("cycle_id", None),
            "improvement_id": data.pop("improvement_id", None),
            "phase": data.pop("phase", None),
            "duration": data.pop("duration", None),
            "outcome": data.pop("outcome", None),
            "summary": data.pop("summary", None),
            "detail": data or None,
        }
        try:
            with self.transaction():
                self.db["phase_events"].insert(self.clean(row))
        except HistoryUnavailable as exc:
            # Said once (not once per event, with a traceback each); the event itself still
            # reaches every other subscriber and the log.
            if not self._events_lost:
                log.error("events are not recorded: %s", exc)
            self._events_lost += 1
            return
        if self._events_lost:
            log.warning(
                "the history database %s is written again (%d event(s) could not be recorded)",
                self.path,
                self._events_lost,
            )
            self._events_lost = 0

    def events(
        self, *, improvement_id: str | None = None, cycle_id: str | None = None
    ) -> list[dict[str, Any]]:
        if improvement_id is None and cycle_id is None:
            raise HistoryError("events need an attempt or a cycle")
        column, value = (
            ("improvement_id", improvement_id) if improvement_id else ("cycle_id", cycle_id)
        )
        with self._lock:
            return [
                _decode(dict(r))
                for r in self.db.query(
                    f"select * from phase_events where {column} = ? order by id", [value]
                )
            ]

    def add_approval(
        self, improvement_id: str, decision: str, user: str, uid: int, reason: str | None
    ) -> None:
        with self.transaction():
            self.db["approvals"].insert(
                self.clean(
                    {
                        "improvement_id": improvement_id,
                        "decision": decision,
                        "user": user,
                        "uid": uid,
                        "at": self.now(),
                        "reason": reason,
                    }
                )
            )

    def approvals(self, improvement_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [
                dict(r)
                for r in self.db.query(
                    "select * from approvals where improvement_id = ? order by id", [improvement_id]
                )
            ]

    # -- control flags (the kill switch) -------------------------------------------------

    def get_control(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            rows = list(self.db.query("select value from control where key = ?", [key]))
        return json.loads(rows[0]["value"]) if rows else None

    def paused(self) -> Pause | None:
        """The kill switch, if it is set: who, when, why."""
        return typing.cast(Pause | None, self.get_control("paused"))

    def set_control(self, key: str, value: dict[str, Any] | None) -> None:
        with self.transaction():
            if value is None:
                self.db.execute("delete from control where key = ?", [key])
            else:
                self.db["control"].upsert(
                    {"key": key, "value": json.dumps(value), "at": self.now()}, pk="key"
                )

    # -- baselines ------------------------------------------------------------------------

    def get_baseline(self, target: str, commit_sha: str, command_key: str) -> dict[str, Any] | None:
        with self._lock:
            rows = list(
                self.db.query(
                    "select results from baselines where target = ? and commit_sha = ? "
                    "and command_key = ?",
                    [target, commit_sha, command_key],
                )
            )
        return json.loads(rows[0]["results"]) if rows else None

    def put_baseline(
        self, target: str, commit_sha: str, command_key: str, results: dict[str, Any]
    ) -> None:
        with self.transaction():
            self.db["baselines"].upsert(
                {
                    "target": target,
                    "commit_sha": commit_sha,
                    "command_key": command_key,
                    "created_at": self.now(),
                    "results": self.clean(results),
                },
                pk=("target", "commit_sha", "command_key"),
            )

    def latest_baseline(
        self, target: str, command_key: str, *, before: str
    ) -> tuple[str, dict[str, Any]] | None:
        """The newest cached result of `command_key` on `target` at a commit other than
        `before`, with its commit: what the target's tests said last time."""
        with self._lock:
            rows = list(
                self.db.query(
                    "select commit_sha, results from baselines where target = ? "
                    "and command_key = ? and commit_sha != ? order by created_at desc, rowid desc limit 1",
                    [target, command_key, before],
                )
            )
        return (rows[0]["commit_sha"], json.loads(rows[0]["results"])) if rows else None

    def forget_baseline(self, target: str, commit_sha: str, command_key: str) -> None:
        """Drop a cached result, so the next cycle measures it again (the environment changed
        under it: a test command that ran then does not run now)."""
        with self.transaction():
            self.db.execute(
                "delete from baselines where target = ? and commit_sha = ? and command_key = ?",
                [target, commit_sha, command_key],
            )

    # -- test durations over time -----------------------------------------------------------

    def record_durations(self, target: str, commit_sha: str, durations: dict[str, float]) -> None:
        at = self.now()
        with self.transaction():
            self.db["test_durations"].upsert_all(
                (
                    {
                        "target": target,
                        "commit_sha": commit_sha,
                        "test_id": t,
                        "duration": d,
                        "at": at,
                    }
                    for t, d in durations.items()
                ),
                pk=("target", "commit_sha", "test_id"),
            )

    def earlier_durations(
        self, target: str, commit_sha: str, commits: int = 10
    ) -> dict[str, list[tuple[str, float]]]:
        """Per test, its durations at up to `commits` earlier analysed commits, newest first."""
        with self._lock:
            recent = [
                r["commit_sha"]
                for r in self.db.query(
                    "select commit_sha, max(at) as last from test_durations where target = ? "
                    "and commit_sha != ? group by commit_sha order by last desc limit ?",
                    [target, commit_sha, commits],
                )
            ]
            if not recent:
                return {}
            rows = self.db.query(
                f"select test_id, commit_sha, duration from test_durations where target = ? "
                f"and commit_sha in ({', '.join('?' * len(recent))}) order by at desc",
                [target, *recent],
            )
            found: dict[str, list[tuple[str, float]]] = {}
            for r in rows:
                found.setdefault(r["test_id"], []).append((r["commit_sha"], r["duration"]))
        return found

    # -- outcomes (LEARN) -----------------------------------------------------------------

    def add_outcome(self, **fields: Any) -> None:
        with self.transaction():
            self.db["outcomes"].upsert(
                self.clean({"at": self.now(), **fields}), pk="improvement_id"
            )

    def rejections_like(
        self, finding_kind: str, target_file: str | None, limit: int = 3
    ) -> list[dict[str, Any]]:
        """Human rejections of the same kind of change, those on the same file first."""
        with self._lock:
            rows = self.db.query(
                "select i.improvement_id, i.target_file, i.summary, a.user, a.at, a.reason "
                "from improvements i join approvals a on a.improvement_id = i.improvement_id "
                "where a.decision = 'rejected' and i.finding_kind = ? "
                "order by (i.target_file = ?) desc, a.at desc limit ?",
                [finding_kind, target_file, limit],
            )
            return [dict(r) for r in rows]

    def outcomes(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                _decode(dict(r)) for r in self.db.query("select * from outcomes order by at, rowid")
            ]

    def file_counts(self, target_file: str) -> tuple[int, int]:
        """(kept, attempts) of earlier changes to this file."""
        with self._lock:
            row = next(
                self.db.query(
                    "select coalesce(sum(kept), 0) as kept, count(*) as n from outcomes where target_file = ?",
                    [target_file],
                )
            )
        return int(row["kept"]), int(row["n"])

    def predictions_and_outcomes(self) -> list[tuple[float, int]]:
        """(predicted success, kept) for attempts whose prediction was recorded before their outcome."""
        with self._lock:
            rows = self.db.query(
                "select i.success_score as p, o.kept as y from outcomes o "
                "join improvements i on i.improvement_id = o.improvement_id where i.success_score is not null"
            )
            return [(float(r["p"]), int(r["y"])) for r in rows]

    def add_predictor_version(self, record: dict[str, Any]) -> None:
        with self.transaction():
            self.db["predictor"].insert(record)

    def decode(self, row: dict[str, Any]) -> dict[str, Any]:
        return _decode(row)

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Read-only reports (stats); JSON columns decoded."""
        with self._lock:
            return [_decode(dict(r)) for r in self.db.query(sql, params or [])]

    def success_counts(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(generator, finding kind) → (kept, attempts), from the recorded outcomes."""
        with self._lock:
            rows = self.db.query(
                "select generator, finding_kind, sum(kept) as kept, count(*) as n "
                "from outcomes group by generator, finding_kind"
            )
            return {
                (r["generator"], r["finding_kind"]): (int(r["kept"]), int(r["n"])) for r in rows
            }


def _connect_read_only(
    path: Path, busy_timeout: float, *, immutable: bool = False
) -> sqlite3.Connection:
    """A connection that cannot write, checked by a first read."""
    uri = f"{path.absolute().as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=busy_timeout)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        conn.execute("select count(*) from sqlite_master").fetchone()
    except sqlite3.Error:
        conn.close()
        raise
    return conn
