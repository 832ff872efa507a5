"""What each request does: decode → call the application → encode, through one table.

Reading is answered at once (in a thread, off the event loop). A decision is recorded the
moment it arrives (an approval, a rejection), so it survives whatever happens next; the work it
starts (a promotion, a clean-up, a rollback) queues in its target's lane, behind that target's
running cycle if there is one (never another target's), and the answer says whether that work
is done or queued.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from overseer import __version__
from overseer.application import Application, NoHistory, StoredStatus, UnknownTarget
from overseer.config import OverseerConfig
from overseer.core import actions
from overseer.core.context import Actor, Context
from overseer.core.lifecycle import ActionRefused
from overseer.core.plumbing.lock import TargetBusy
from overseer.core.plumbing.repo import RepoError
from overseer.core.record.history import UnknownAttempt
from overseer.daemon.auth import is_approver, why_not
from overseer.daemon.connections import Connection
from overseer.daemon.lanes import lane_of
from overseer.daemon.live import LiveState
from overseer.protocol import (
    PROTOCOL_VERSION,
    WRITE_OPS,
    ProtocolError,
    RequestError,
    decode_request,
    error,
    ok,
)
from overseer.vocabulary import AttemptRow, StatusSnapshot, paused_text

log = logging.getLogger(__name__)

# How long a deciding request waits for its work before answering "queued".
WAIT_FOR_WORK_SECONDS = 2.0
# How long the history's part of a status may be reused when no event came meanwhile.
STATUS_FRESH_SECONDS = 1.0

Op = Callable[[Connection, Any], Awaitable[dict[str, Any]]]
T = TypeVar("T")

# What each kind of failure is called on the wire.
REFUSALS: tuple[tuple[type[Exception], str, str], ...] = (
    (UnknownAttempt, "not_found", "No such attempt"),
    (NoHistory, "not_found", "No history"),
    (UnknownTarget, "not_found", "No such target"),
    (ActionRefused, "refused", "Refused"),
    (TargetBusy, "busy", "Busy"),
    (RepoError, "git_error", "git failed"),
)


class Handlers:
    def __init__(
        self,
        app: Application,
        state: LiveState,
        config: Callable[[], OverseerConfig],
        run_cycles: Callable[
            [str, list[str] | None, dict[str, str | None] | None], Coroutine[Any, Any, str]
        ],
    ) -> None:
        self.app = app
        self.state = state
        self.config = config  # the configuration in force (a reload replaces it)
        self.run_cycles = run_cycles
        # ((event serial, targets), monotonic time, what stored_status read)
        self._stored: tuple[Any, float, StoredStatus] | None = None
        # Decisions have a thread of their own: reads from any number of clients queue in the
        # shared pool (asyncio.to_thread), and a pause must not wait behind them.
        self._deciding = ThreadPoolExecutor(max_workers=1, thread_name_prefix="overseer-decide")
        self.ops: dict[str, Op] = {
            "hello": self.hello,
            "ping": self.ping,
            "status": self.status_op,
            "history": self.history,
            "show": self.show,
            "stats": self.stats,
            "subscribe": self.subscribe,
            "unsubscribe": self.unsubscribe,
            "run_now": self.run_now,
            "pause": self.pause,
            "resume": self.resume,
            "approve": self.approve,
            "reject": self.reject,
            "rollback": self.rollback,
            "retry": self.retry,
        }

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
        # Asked per request, against the configuration in force: a reload that removes an
        # approver takes the right away from their open connections too.
        if request.op in WRITE_OPS and not is_approver(conn.peer, self.config().approvers):
            return error(
                request.id,
                ProtocolError(
                    "not_authorized",
                    "Not an approver",
                    why_not(conn.peer, self.config().approvers),
                ),
            )
        try:
            result = await self.ops[request.op](conn, args)
        except ProtocolError as exc:
            return error(request.id, exc)
        except Exception as exc:
            for kind, type_, title in REFUSALS:
                if isinstance(exc, kind):
                    return error(request.id, ProtocolError(type_, title, str(exc)))
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

    async def decide(self, fn: Callable[..., T], *args: Any) -> T:
        """Blocking work of a deciding request, in the deciding thread."""
        context = contextvars.copy_context()
        call = functools.partial(context.run, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._deciding, call)

    def close(self) -> None:
        self._deciding.shutdown(wait=False, cancel_futures=True)

    # -- reading ----------------------------------------------------------------------------

    async def hello(self, conn: Connection, args: Any) -> dict[str, Any]:
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
            "pid": os.getpid(),
            "user": conn.peer.user,
            "uid": conn.peer.uid,
            "approver": is_approver(conn.peer, self.config().approvers),
        }

    async def ping(self, conn: Connection, args: Any) -> dict[str, Any]:
        return {"pong": True}

    async def status_op(self, conn: Connection, args: Any) -> dict[str, Any]:
        return dict(await asyncio.to_thread(self.status))

    def stored_status(self) -> StoredStatus:
        """The part of the status read from the history: pause, budgets, pending approvals.

        Read again after any event (every change to these is one: a decision, a pause, an
        attempt) or when a second has passed (a spent change ages out of the hour); otherwise
        a stream of status requests would query the database that the cycle is writing.
        """
        key = (self.state.event_serial, tuple(self.app.target_name(t) for t in self.app.targets))
        now = time.monotonic()
        cached = self._stored
        if cached is not None and cached[0] == key and now - cached[1] < STATUS_FRESH_SECONDS:
            return cached[2]
        stored = self.app.stored_status()
        self._stored = (key, now, stored)
        return stored

    def status(self) -> StatusSnapshot:
        return self.app.status(
            self.state, stored=self.stored_status(), branches=self.state.branches
        )

    async def history(self, conn: Connection, args: Any) -> dict[str, Any]:
        return await asyncio.to_thread(
            self.app.history,
            target=args.target,
            statuses=args.status,
            limit=args.limit,
            offset=args.offset,
            search=args.search,
        )

    async def show(self, conn: Connection, args: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self.app.show, args.id)

    async def stats(self, conn: Connection, args: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self.app.stats, args.target)

    async def subscribe(self, conn: Connection, args: Any) -> dict[str, Any]:
        conn.outbox.subscribed = True
        return {"subscribed": True, "status": dict(await asyncio.to_thread(self.status))}

    async def unsubscribe(self, conn: Connection, args: Any) -> dict[str, Any]:
        conn.outbox.subscribed = False
        return {"subscribed": False}

    # -- deciding ---------------------------------------------------------------------------

    @staticmethod
    def actor(conn: Connection) -> Actor:
        return Actor(conn.peer.user, conn.peer.uid)

    async def run_now(self, conn: Connection, args: Any) -> dict[str, Any]:
        state = self.state
        if state.stop.stopping:
            raise ProtocolError("refused", "Stopping", "the daemon is stopping")
        paused = await self.decide(self.app.rt.history.paused)
        if paused:
            raise ProtocolError("refused", "Paused", f"{paused_text(paused)}; resume it first")
        if all(self.app.target_name(t) in state.cycling for t in self.app.targets):
            raise ProtocolError("busy", "Busy", "a cycle is already due or running on each target")
        problems = await asyncio.to_thread(self.app.target_problems)
        usable = [
            name for name, why in problems.items() if why is None and name not in state.cycling
        ]
        skipped = {name: why for name, why in problems.items() if why is not None}
        if not usable:
            raise ProtocolError(
                "refused",
                "Target unusable",
                "no cycle started: "
                + "; ".join(
                    f"target {name} cannot be used: {why}" for name, why in skipped.items()
                ),
            )
        # The check just made is the cycles' own: checking again would run the same git
        # commands a millisecond later (4 ms of every run-now).
        task = asyncio.create_task(self.run_cycles(f"run-now by {conn.peer.user}", None, problems))
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)
        await asyncio.sleep(0)  # let it claim the targets before we answer
        return {"started": True, "targets": usable, "skipped": skipped}

    async def pause(self, conn: Connection, args: Any) -> dict[str, Any]:
        await self.decide(self.app.pause, self.actor(conn), args.reason)
        return {"paused": True}

    async def resume(self, conn: Connection, args: Any) -> dict[str, Any]:
        await self.decide(self.app.resume, self.actor(conn))
        return {"paused": False}

    async def _work(self, description: str, ctx: Context, fn: Any, *fn_args: Any) -> dict[str, Any]:
        """Queue `fn` in the lane of `ctx`'s target; its result if it finishes soon, else say
        it is queued."""
        lanes = self.state.lanes
        lane = lane_of(ctx.target.config)
        ahead = lanes.ahead(lane)
        future = asyncio.ensure_future(lanes.run(lane, fn, *fn_args))

        def report(done: asyncio.Future[Any]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.error("%s failed: %s", description, done.exception())

        future.add_done_callback(report)
        finished, _ = await asyncio.wait({future}, timeout=WAIT_FOR_WORK_SECONDS)
        if finished:
            return dict(future.result())
        running = self.state.running_now().get(ctx.target.name)
        where = f" (the cycle on {ctx.target.name} is in {running.get('phase')})" if running else ""
        return {
            "queued": True,
            "message": f"{description} is queued behind {ahead} job(s){where}; "
            "its outcome will be reported as an event",
        }

    async def approve(self, conn: Connection, args: Any) -> dict[str, Any]:
        ctx, row = await self.decide(self.app.context_for, args.id)
        iid = row["improvement_id"]
        await self.decide(actions.record_approval, ctx, iid, self.actor(conn), args.reason)

        def promote() -> AttemptRow:
            with ctx.lock(wait=5.0):
                return actions.promote_approved(ctx, iid)

        return await self._work(f"the promotion of {iid[:8]}", ctx, promote)

    async def reject(self, conn: Connection, args: Any) -> dict[str, Any]:
        ctx, row = await self.decide(self.app.context_for, args.id)
        iid = row["improvement_id"]
        await self.decide(actions.record_rejection, ctx, iid, self.actor(conn), args.reason)

        def clean() -> AttemptRow:
            with ctx.lock(wait=5.0):
                return actions.finish_rejection(ctx, iid)

        return await self._work(f"the clean-up of {iid[:8]}", ctx, clean)

    async def rollback(self, conn: Connection, args: Any) -> dict[str, Any]:
        ctx, row = await self.decide(self.app.context_for, args.id)
        return await self._work(
            f"the rollback of {row['improvement_id'][:8]}",
            ctx,
            actions.rollback,
            ctx,
            row["improvement_id"],
            self.actor(conn),
            args.reason,
        )

    async def retry(self, conn: Connection, args: Any) -> dict[str, Any]:
        """Recorded at once, like every decision: it writes the history only (no repository,
        no lane)."""
        return dict(await self.decide(self.app.retry, args.id, self.actor(conn), args.reason))
