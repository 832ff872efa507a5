"""What each request does. Reading is answered at once; deciding goes through the worker.

A decision is recorded the moment it arrives (an approval, a rejection), so it survives
whatever happens next; the work it starts (a promotion, a cleanup, a rollback) queues behind
the running cycle in the one worker thread. The answer says whether that work is done or queued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from overseer import __version__
from overseer.base.clock import parse_iso
from overseer.core import actions
from overseer.core.context import Actor
from overseer.core.lifecycle import ActionRefused
from overseer.core.plumbing.lock import TargetBusy
from overseer.core.plumbing.repo import RepoError
from overseer.core.record.history import UnknownAttempt
from overseer.core.safety.ratelimit import RateLimiter
from overseer.daemon.auth import why_not
from overseer.daemon.scheduler import describe
from overseer.protocol import (
    PROTOCOL_VERSION,
    WRITE_OPS,
    ProtocolError,
    RequestError,
    decode_request,
    error,
    ok,
)
from overseer.vocabulary import WAITING, AttemptRow

if TYPE_CHECKING:
    from overseer.daemon.server import Connection, Daemon

log = logging.getLogger(__name__)

# How long a deciding request waits for its work before answering "queued".
WAIT_FOR_WORK_SECONDS = 2.0
# How long the history's part of a status may be reused when no event came meanwhile.
STATUS_FRESH_SECONDS = 1.0

LIST_COLUMNS = (
    "improvement_id", "target", "status", "phase", "change_type", "risk_level", "risk_reasons",
    "target_file", "generator", "finding_kind", "summary", "success_score", "tests_passed",
    "tests_failed", "tests_skipped", "performance_delta", "was_deployed", "was_rolled_back",
    "dry_run", "started_at", "completed_at", "rolled_back_at", "awaiting_since", "approved_by",
    "git_branch", "git_commit_hash", "revert_commit_hash", "failure_reason", "similar_rejections",
)  # fmt: skip


def light(row: AttemptRow) -> dict[str, Any]:
    return {k: row.get(k) for k in LIST_COLUMNS}


class Handlers:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        # ((event serial, targets), monotonic time, what stored_status read)
        self._stored_status: tuple[Any, float, dict[str, Any]] | None = None

    async def answer(self, conn: Connection, line: bytes) -> dict[str, Any]:
        try:
            request, args = decode_request(line)
        except RequestError as exc:
            return error(exc.request_id, exc.error)
        except ProtocolError as exc:
            return error(None, exc)
        except Exception as exc:  # a request that breaks the parser still gets an answer
            log.exception("reading a request failed")
            return error(
                None,
                ProtocolError(
                    "internal",
                    "Internal error",
                    f"the request could not be read: {type(exc).__name__} (see the daemon's log)",
                ),
            )
        if not conn.greeted and request.op != "hello":
            return error(
                request.id,
                ProtocolError(
                    "handshake_required",
                    "Say hello first",
                    f"the first request must be hello with protocol {PROTOCOL_VERSION}",
                ),
            )
        if request.op in WRITE_OPS and not conn.approver:
            return error(
                request.id,
                ProtocolError(
                    "not_authorized",
                    "Not an approver",
                    why_not(conn.peer, self.daemon.config.approvers),
                ),
            )
        try:
            result = await getattr(self, f"op_{request.op}")(conn, args)
        except ProtocolError as exc:
            return error(request.id, exc)
        except UnknownAttempt as exc:
            return error(request.id, ProtocolError("not_found", "No such attempt", str(exc)))
        except ActionRefused as exc:
            return error(request.id, ProtocolError("refused", "Refused", str(exc)))
        except TargetBusy as exc:
            return error(request.id, ProtocolError("busy", "Busy", str(exc)))
        except RepoError as exc:
            return error(request.id, ProtocolError("git_error", "git failed", str(exc)))
        except Exception as exc:
            log.exception("request %s failed", request.op)
            return error(
                request.id,
                ProtocolError(
                    "internal",
                    "Internal error",
                    f"{type(exc).__name__}: {exc} (see the daemon's log)",
                ),
            )
        return ok(request.id, result)

    # -- reading ----------------------------------------------------------------------------

    async def op_hello(self, conn: Connection, args: Any) -> dict[str, Any]:
        if args.protocol != PROTOCOL_VERSION:
            raise ProtocolError(
                "protocol_mismatch",
                "Protocol mismatch",
                f"the daemon speaks protocol {PROTOCOL_VERSION}, the client {args.protocol}; "
                "use matching versions of overseer",
            )
        conn.greeted = True
        return {
            "protocol": PROTOCOL_VERSION,
            "server": f"overseer {__version__}",
            "pid": __import__("os").getpid(),
            "user": conn.peer.user,
            "uid": conn.peer.uid,
            "approver": conn.approver,
        }

    async def op_ping(self, conn: Connection, args: Any) -> dict[str, Any]:
        return {"pong": True}

    async def op_status(self, conn: Connection, args: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self.status)

    def stored_status(self) -> dict[str, Any]:
        """The part of the status read from the history: pause, budgets, pending approvals.

        Read again after any event (every change to these is one: a decision, a pause, an
        attempt) or when a second has passed (a spent change ages out of the hour); otherwise
        a stream of status requests would query the database that the cycle is writing.
        """
        d = self.daemon
        key = (d.event_serial, tuple(t.name or t.path.name for t in d.targets))
        now = time.monotonic()
        cached = self._stored_status
        if cached is not None and cached[0] == key and now - cached[1] < STATUS_FRESH_SECONDS:
            return cached[2]
        rt = d.rt
        history = rt.history
        limiter = RateLimiter(history, rt.policy, rt.clock)
        budgets = {}
        for t in d.targets:
            name = t.name or t.path.name
            budgets[name] = limiter.budget(name)
        ttl = d.config.approvers.expire_after
        pending = []
        for row in history.attempts(statuses=(*WAITING, "regressed"), limit=200):
            item = light(row)
            since = row.get("awaiting_since")
            if since and row["status"] == "awaiting_approval":
                item["expires_at"] = (parse_iso(since) + timedelta(seconds=ttl)).isoformat()
            pending.append(item)
        stored = {"paused": history.get_control("paused"), "budgets": budgets, "pending": pending}
        self._stored_status = (key, now, stored)
        return stored

    def status(self) -> dict[str, Any]:
        d = self.daemon
        rt = d.rt
        history = rt.history
        stored = self.stored_status()
        paused = stored["paused"]
        pending = stored["pending"]
        targets = []
        for t in d.targets:
            name = t.name or t.path.name
            targets.append(
                {
                    "name": name,
                    "path": str(t.path),
                    "branch": t.branch or d.branches.get(name),
                    "budget": stored["budgets"][name],
                }
            )
        next_run = d.scheduler.next_run() if d.scheduler else None
        if d.stop.stopping:
            state = "stopping"
        elif paused:
            state = "paused"
        elif d.current is not None:
            state = "running"
        else:
            state = "idle"
        defaults = d.config.defaults
        return {
            "state": state,
            "paused": paused,
            "autonomy": rt.policy.autonomy.value,
            "policy": rt.policy.source,
            "policy_version": rt.policy.version,
            "dry_run": defaults.dry_run,
            "require_approval": defaults.require_approval,
            "max_changes": min(defaults.max_changes_per_run, rt.policy.policy.max_changes_per_run),
            "schedule": describe(d.config.schedule),
            "next_run": next_run.isoformat() if next_run else None,
            "current": dict(d.current) if d.current else None,
            "targets": targets,
            # Each configured generator: name, label, healthy, and when off why and until when.
            "generators": rt.generator_status(),
            "pending_approvals": pending,
            "queue": d.queued,
            "clients": len(d.connections),
            "subscribers": sum(1 for c in d.connections if c.outbox.subscribed),
            "pid": __import__("os").getpid(),
            "version": __version__,
            "started_at": d.started_at.isoformat(),
            "socket": str(d.socket_path),
            "state_dir": str(rt.state.root),
            "history_problem": history.problem,
        }

    async def op_history(self, conn: Connection, args: Any) -> dict[str, Any]:
        history = self.daemon.rt.history

        def read() -> dict[str, Any]:
            statuses = tuple(args.status) if args.status else None
            rows = history.attempts(
                target=args.target,
                statuses=statuses,
                limit=args.limit,
                offset=args.offset,
                search=args.search,
            )
            total = history.count_attempts(
                target=args.target, statuses=statuses, search=args.search
            )
            return {"attempts": [light(r) for r in rows], "total": total, "offset": args.offset}

        return await asyncio.to_thread(read)

    async def op_show(self, conn: Connection, args: Any) -> dict[str, Any]:
        history = self.daemon.rt.history

        def read() -> dict[str, Any]:
            iid = history.resolve_id(args.id)
            return {
                **history.get(iid),
                "events": history.events(improvement_id=iid),
                "approvals": history.approvals(iid),
            }

        return await asyncio.to_thread(read)

    async def op_subscribe(self, conn: Connection, args: Any) -> dict[str, Any]:
        conn.outbox.subscribed = True
        return {"subscribed": True, "status": await asyncio.to_thread(self.status)}

    async def op_unsubscribe(self, conn: Connection, args: Any) -> dict[str, Any]:
        conn.outbox.subscribed = False
        return {"subscribed": False}

    # -- deciding ---------------------------------------------------------------------------

    def actor(self, conn: Connection) -> Actor:
        return Actor(conn.peer.user, conn.peer.uid)

    async def op_run_now(self, conn: Connection, args: Any) -> dict[str, Any]:
        d = self.daemon
        if d.stop.stopping:
            raise ProtocolError("refused", "Stopping", "the daemon is stopping")
        paused = d.rt.history.get_control("paused")
        if paused:
            raise ProtocolError(
                "refused",
                "Paused",
                f"overseer is paused (by {paused.get('user')}); resume it first",
            )
        if d.cycle_lock.locked():
            raise ProtocolError("busy", "Busy", "a cycle is already running")
        task = asyncio.create_task(d.run_cycles(f"run-now by {conn.peer.user}"))
        d.tasks.append(task)
        await asyncio.sleep(0)  # let it take the cycle lock before we answer
        return {"started": True, "targets": [t.name or t.path.name for t in d.targets]}

    async def op_pause(self, conn: Connection, args: Any) -> dict[str, Any]:
        rt = self.daemon.rt
        await asyncio.to_thread(
            actions.set_paused, rt.history, rt.bus, self.actor(conn), True, args.reason
        )
        return {"paused": True}

    async def op_resume(self, conn: Connection, args: Any) -> dict[str, Any]:
        rt = self.daemon.rt
        await asyncio.to_thread(actions.set_paused, rt.history, rt.bus, self.actor(conn), False)
        return {"paused": False}

    async def _context_for(self, attempt: str) -> tuple[Any, AttemptRow]:
        d = self.daemon

        def find() -> tuple[Any, AttemptRow]:
            history = d.rt.history
            row = history.get(history.resolve_id(attempt))
            return d.context(d.rt.target_for_row(row)), row

        return await asyncio.to_thread(find)

    async def _work(self, description: str, fn: Any, *fn_args: Any) -> dict[str, Any]:
        """Queue `fn` on the worker; its result if it finishes soon, else say it is queued."""
        d = self.daemon
        ahead = d.queued
        future = asyncio.ensure_future(d.in_worker(fn, *fn_args))

        def report(done: asyncio.Future[Any]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.error("%s failed: %s", description, done.exception())

        future.add_done_callback(report)
        finished, _ = await asyncio.wait({future}, timeout=WAIT_FOR_WORK_SECONDS)
        if finished:
            return future.result()
        running = d.current
        where = f" (a cycle on {running['target']} is in {running.get('phase')})" if running else ""
        return {
            "queued": True,
            "message": f"{description} is queued behind {ahead} job(s){where}; "
            "its outcome will be reported as an event",
        }

    async def op_approve(self, conn: Connection, args: Any) -> dict[str, Any]:
        ctx, row = await self._context_for(args.id)
        iid = row["improvement_id"]
        await asyncio.to_thread(actions.record_approval, ctx, iid, self.actor(conn), args.reason)

        def promote() -> AttemptRow:
            with ctx.lock(wait=5.0):
                return actions.promote_approved(ctx, iid)

        return await self._work(f"the promotion of {iid[:8]}", promote)

    async def op_reject(self, conn: Connection, args: Any) -> dict[str, Any]:
        ctx, row = await self._context_for(args.id)
        iid = row["improvement_id"]
        await asyncio.to_thread(actions.record_rejection, ctx, iid, self.actor(conn), args.reason)

        def clean() -> AttemptRow:
            with ctx.lock(wait=5.0):
                return actions.finish_rejection(ctx, iid)

        return await self._work(f"the clean-up of {iid[:8]}", clean)

    async def op_rollback(self, conn: Connection, args: Any) -> dict[str, Any]:
        ctx, row = await self._context_for(args.id)
        return await self._work(
            f"the rollback of {row['improvement_id'][:8]}",
            actions.rollback,
            ctx,
            row["improvement_id"],
            self.actor(conn),
            args.reason,
        )
