"""The daemon's lifecycle: serve() → signals → startup → main loop → shutdown.

Shaped like uvicorn's server: the first SIGTERM or SIGINT asks for a graceful stop (no new
cycle; the running phase may finish within `daemon.shutdown_grace`, then the attempt is closed
as interrupted); a second one cancels at once (the running command's process group is killed).
SIGHUP reloads the configuration.

All blocking work — cycles, promotions, rollbacks, expiry — runs in one worker thread, one job
at a time, in order. The event loop only talks: to clients, to systemd, to the scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import stat
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from overseer.base.clock import Clock, iso
from overseer.base.problems import ProblemsError
from overseer.config import OverseerConfig, TargetConfig
from overseer.core.context import Context, RunSettings
from overseer.core.plumbing.lock import TargetBusy
from overseer.core.plumbing.repo import RepoError
from overseer.core.plumbing.stop import CycleStopped, StopToken
from overseer.core.record.history import HistoryError
from overseer.core.safety.policy import verdict_changes
from overseer.daemon import reload as reloading
from overseer.daemon.auth import Peer, is_approver, peer_of
from overseer.daemon.broadcast import Broadcaster, Outbox
from overseer.daemon.notify import Notifier
from overseer.daemon.scheduler import CycleScheduler, describe
from overseer.locations import resolve_socket
from overseer.protocol import MAX_LINE_BYTES, ProtocolError, encode, error
from overseer.runtime import Runtime
from overseer.vocabulary import (
    ConfigReloaded,
    CycleSkipped,
    DaemonStarted,
    DaemonStopping,
    ErrorRaised,
    Event,
    ReloadFailed,
    event_from_dict,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with its terminating NUL
MAX_SKIPPED_BYTES = 64 * 1024 * 1024  # an over-long line beyond this closes the connection
# Requests read from one connection and not yet answered on the wire. Beyond it the daemon
# reads no more from that client until it reads its answers: a client that writes and never
# reads stalls itself, not the daemon's memory.
MAX_BACKLOG = 32
# How long answers still being worked out may take to go out after the client's end of
# stream (a client may close its writing side and keep reading).
ANSWER_GRACE = 5.0


class DaemonFailed(Exception):
    """The daemon cannot start; the message says why and what to do."""


@dataclass
class DaemonOptions:
    config: OverseerConfig
    config_path: Path | None = None
    state_dir: Path | None = None
    socket: Path | None = None
    target: Path | None = None
    test_command: str | None = None


@dataclass(eq=False)  # one object per connection, kept in a set
class Connection:
    peer: Peer
    outbox: Outbox
    approver: bool
    writer: asyncio.StreamWriter
    handler: asyncio.Task[Any] | None = None
    greeted: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    answering: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def backlog(self) -> int:
        """Requests read and not yet answered on the wire."""
        return len(self.answering) + self.outbox.responses_queued


class Daemon:
    def __init__(
        self,
        options: DaemonOptions,
        *,
        clock: Clock | None = None,
        install_signal_handlers: bool = True,
    ) -> None:
        self.options = options
        self.config = options.config
        self.rt = Runtime.create(options.config, options.state_dir, clock)
        self.socket_path = resolve_socket(
            options.socket, options.config.daemon.socket, for_daemon=True
        )
        self.install_signal_handlers = install_signal_handlers
        self.notifier = Notifier()
        self.stop = StopToken()
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="overseer-worker")
        self.queued = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.ready = asyncio.Event()
        self.should_exit = asyncio.Event()
        self.force_exit = False
        self.exit_reason = ""
        self.cycle_lock = asyncio.Lock()
        self.current: dict[str, Any] | None = None
        # Targets whose cycle ended early (name → why): the housekeeping recovers them.
        self.unrecovered: dict[str, str | None] = {}
        self.event_serial = 0  # events emitted so far (the status cache's key)
        self.started_at = self.rt.clock.now()
        self.connections: set[Connection] = set()
        self.targets: list[TargetConfig] = []
        self.branches: dict[str, str] = {}  # the branch each target resolved to
        self.server: asyncio.AbstractServer | None = None
        self.scheduler: CycleScheduler | None = None
        self.broadcaster: Broadcaster | None = None
        self.tasks: list[asyncio.Task[Any]] = []
        self._watch_stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        from overseer.daemon.handlers import Handlers

        self.handlers = Handlers(self)

    # -- lifecycle --------------------------------------------------------------------------

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        if self.install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.handle_exit, sig)
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        try:
            await self.startup()
            await self.should_exit.wait()
        finally:
            await self.shutdown()
            if self.install_signal_handlers:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    loop.remove_signal_handler(sig)

    def handle_exit(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if self.should_exit.is_set():
            log.warning("second %s: stopping now, the running command is killed", name)
            self.force_exit = True
            self.stop.cancel(f"stopped by a second {name}")
        else:
            log.info("%s: stopping once the running phase finishes", name)
            self.exit_reason = f"{name} received"
            self.should_exit.set()

    async def startup(self) -> None:
        loop = asyncio.get_running_loop()
        self.broadcaster = Broadcaster(loop)
        self.broadcaster.listeners.append(self._on_event)
        self.rt.bus.subscribe(self._publish)
        try:
            self.targets = self.rt.targets(self.options.target, self.options.test_command)
        except Exception as exc:
            raise DaemonFailed(str(exc)) from None
        try:
            _ = self.rt.history  # opened now, so it records every event from here on
        except HistoryError as exc:  # locked by another process, a full disk
            raise DaemonFailed(str(exc)) from None
        # Generators checked now (a missing model, an endpoint that does not answer), so the
        # problem shows at start-up, not at the first cycle; the others keep working.
        await asyncio.to_thread(self.rt.generators)
        for target in self.targets:
            await self.in_worker(self._recover, target)
        await self._listen()
        self.scheduler = CycleScheduler(
            self.scheduled_cycle,
            self.housekeeping,
            self.config.schedule,
            self.config.daemon.misfire_grace,
            self.config.daemon.housekeeping_every,
        )
        self.scheduler.start()
        self.tasks.append(asyncio.create_task(self._watch_files(), name="watch-config"))
        if self.notifier.watchdog_seconds:
            self.tasks.append(asyncio.create_task(self._watchdog(), name="watchdog"))
        self.rt.bus.emit(
            DaemonStarted(
                pid=os.getpid(),
                socket=str(self.socket_path),
                targets=[t.name or t.path.name for t in self.targets],
            )
        )
        self.notifier.ready(self.status_line())
        log.info(
            "ready: %d target(s), %s, socket %s, state %s",
            len(self.targets),
            describe(self.config.schedule),
            self.socket_path,
            self.rt.state.root,
        )
        self.ready.set()

    async def shutdown(self) -> None:
        reason = self.exit_reason or "shutdown"
        self.notifier.stopping(f"stopping: {reason}")
        if self.broadcaster is not None:
            self.rt.bus.emit(DaemonStopping(reason=reason))
        if self.scheduler is not None:
            self.scheduler.shutdown()
        if self.server is not None:
            self.server.close()
        self.stop.request_stop(f"the daemon is stopping ({reason})")
        grace = self.config.daemon.shutdown_grace
        if not self.idle.is_set() and not self.force_exit:
            log.info("waiting up to %.0f s for the running phase to finish", grace)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle_or_forced(), grace)
        if not self.idle.is_set():
            self.stop.cancel(f"the phase did not finish within {grace:.0f} s of the stop request")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.idle.wait(), 15)
        self._watch_stop.set()
        for task in self.tasks:
            task.cancel()
        for conn in list(self.connections):
            for task in conn.tasks:
                task.cancel()
            conn.writer.close()  # the client sees the end of the stream
        # Let each connection's handler see the end and clean up before the loop goes away.
        handlers = [c.handler for c in self.connections if c.handler is not None]
        if handlers:
            await asyncio.wait(handlers, timeout=2)
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
        with contextlib.suppress(FileNotFoundError):
            # Ours is closed by now: a socket that answers belongs to a successor.
            if self._owns_socket() and not _answers(self.socket_path):
                self.socket_path.unlink()
        self.worker.shutdown(wait=False, cancel_futures=True)
        if self.idle.is_set():
            self.rt.close()
        self.notifier.close()
        log.info("stopped")

    async def _idle_or_forced(self) -> None:
        while not self.idle.is_set() and not self.force_exit:
            await asyncio.sleep(0.1)

    @property
    def worker_stuck(self) -> bool:
        return not self.idle.is_set()

    # -- the worker -------------------------------------------------------------------------

    async def in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work in the one worker thread, after whatever is queued before it."""
        loop = asyncio.get_running_loop()
        self.queued += 1
        self.idle.clear()
        try:
            return await loop.run_in_executor(self.worker, functools.partial(fn, *args))
        finally:
            self.queued -= 1
            if self.queued == 0:
                self.idle.set()

    def context(self, target: TargetConfig) -> Context:
        ctx = self.rt.context(target)
        ctx.stop = self.stop
        return ctx

    def _recover(self, target: TargetConfig, cause: str | None = None) -> None:
        from overseer.core.recovery import recover

        try:
            ctx = self.context(target)
            self.branches[ctx.target.name] = ctx.target.branch
            with ctx.lock(wait=10.0):
                recover(ctx, cause)
        except (RepoError, TargetBusy, HistoryError, OSError) as exc:
            # Tried again by the housekeeping (a locked database, a full disk pass).
            self.unrecovered[target.name or target.path.name] = cause
            self.rt.bus.emit(ErrorRaised(where=str(target.path), message=str(exc)))

    # -- cycles -----------------------------------------------------------------------------

    async def scheduled_cycle(self) -> None:
        await self.run_cycles("schedule")

    async def run_cycles(self, trigger: str) -> str:
        """Run one cycle on each target, in order. Returns why not, when it did not."""
        if self.cycle_lock.locked():
            log.info("%s: a cycle is already running; skipped", trigger)
            return "a cycle is already running"
        async with self.cycle_lock:
            if self.stop.stopping:
                return "the daemon is stopping"
            paused = self.rt.history.get_control("paused")
            if paused:
                why = f"overseer is paused (by {paused.get('user')})"
                self.rt.bus.emit(CycleSkipped(target=None, reason=f"{trigger}: {why}"))
                return why
            for target in list(self.targets):
                if self.stop.stopping:
                    break
                await self.in_worker(self._cycle, target)
            return ""

    def _cycle(self, target: TargetConfig) -> None:
        from overseer.core.cycle import retry_ready, run_cycle

        d = self.config.defaults
        settings = RunSettings(
            dry_run=d.dry_run,
            require_approval=d.require_approval,
            max_changes=d.max_changes_per_run,
            area=d.area,
        )
        try:
            ctx = self.context(target)
            run_cycle(ctx, settings)
            with ctx.lock(wait=5.0):
                retry_ready(ctx)  # approvals that arrived while the cycle ran
        except CycleStopped as exc:
            log.info("cycle on %s stopped: %s", target.path, exc)
        except Exception as exc:
            # What the cycle left in progress when it could not finish its record (the
            # database locked by another process, a full disk, git failing) is closed by
            # the housekeeping's recovery as soon as it can be, not only at the next cycle.
            if isinstance(exc, RepoError | TargetBusy | HistoryError):
                message = str(exc)
            else:
                log.exception("cycle on %s failed", target.path)
                message = f"{type(exc).__name__}: {exc}"
            self.unrecovered[target.name or target.path.name] = f"the cycle ended early: {message}"
            self.rt.bus.emit(ErrorRaised(where=str(target.path), message=message))
        finally:
            self.current = None

    async def housekeeping(self) -> None:
        if self.stop.stopping:
            return
        with contextlib.suppress(asyncio.CancelledError):  # the daemon stopped meanwhile
            await self.in_worker(self._housekeeping)

    def _housekeeping(self) -> None:
        from overseer.core.actions import expire_approvals

        for target in self.targets:
            name = target.name or target.path.name
            if name in self.unrecovered:
                # Put back by _recover if the database still cannot be written.
                self._recover(target, self.unrecovered.pop(name))
            try:
                ctx = self.context(target)
                with ctx.lock(wait=5.0):
                    expire_approvals(ctx, self.config.approvers.expire_after)
            except (RepoError, TargetBusy, HistoryError, OSError) as exc:
                log.warning("expiring approvals on %s: %s", target.path, exc)

    # -- events -----------------------------------------------------------------------------

    def _publish(self, event: Event) -> None:
        """From the bus (any thread) to the loop's subscribers."""
        assert self.broadcaster is not None
        self.event_serial += 1  # before the action that emitted it answers: status re-reads
        data = event.to_dict()
        self._track(data)
        self.broadcaster.publish(data)

    def _track(self, e: dict[str, Any]) -> None:
        kind = e["kind"]
        if kind == "CycleStarted":
            self.branches[e["target"]] = e["branch"]
            self.current = {
                "cycle_id": e["cycle_id"],
                "target": e["target"],
                "branch": e["branch"],
                "phase": None,
                "improvement_id": None,
                "since": e["at"],
                "progress": None,
            }
        elif kind == "PhaseStarted" and self.current is not None:
            self.current.update(
                phase=e["phase"],
                improvement_id=e["improvement_id"],
                phase_since=e["at"],
                progress=None,
            )
        elif kind == "PhaseProgress" and self.current is not None and e.get("total"):
            self.current["progress"] = {"done": e["done"], "total": e["total"]}
        elif kind == "CycleFinished":
            self.current = None

    def _on_event(self, e: dict[str, Any]) -> None:
        """On the loop: log it (journald sees one line per event) and tell systemd."""
        event = event_from_dict(e)
        line = event.describe() if event is not None else None
        if line:
            log.info("%s", line.strip())
        if e["kind"] in ("PhaseStarted", "CycleFinished", "DaemonPaused", "DaemonResumed"):
            self.notifier.status(self.status_line())

    def status_line(self) -> str:
        if self.rt.history.get_control("paused"):
            return "paused"
        current = self.current
        if current and current.get("phase"):
            return f"cycle {current['cycle_id'][:8]} on {current['target']}: {current['phase']}"
        next_run = self.scheduler.next_run() if self.scheduler else None
        return "idle" + (f", next cycle {iso(next_run)}" if next_run else "")

    # -- reload -----------------------------------------------------------------------------

    async def reload(self, changed: list[Path] | None = None) -> bool:
        async with self._reload_lock:
            files = reloading.watched_files(self.options.config_path, self.config)
            shown = [str(p) for p in (changed or files)]
            try:
                result = await asyncio.to_thread(
                    reloading.load_both, self.options.config_path, self.config, self.rt.policy
                )
            except ProblemsError as exc:
                problems = [str(p) for p in exc.problems]
                for problem in problems:
                    log.error("reload rejected: %s", problem)
                self.rt.bus.emit(ReloadFailed(files=shown, problems=problems))
                return False
            old_schedule = self.config.schedule
            old_policy = self.rt.policy
            recent = await asyncio.to_thread(self.rt.history.attempts, limit=50)
            waiting = await asyncio.to_thread(
                self.rt.history.attempts, statuses=("awaiting_approval", "ready_to_promote")
            )
            seen = {r["improvement_id"] for r in recent}
            reverdicts = verdict_changes(
                old_policy,
                result.policy,
                recent + [w for w in waiting if w["improvement_id"] not in seen],
            )
            self.config = result.config
            self.rt.reconfigure(result.config, result.policy)
            if self.options.target is None:
                self.targets = list(result.config.targets)
            if self.scheduler is not None and result.config.schedule != old_schedule:
                self.scheduler.reschedule(result.config.schedule)
            self.rt.bus.emit(
                ConfigReloaded(
                    files=shown,
                    policy_version=result.policy.version,
                    changes=result.changes,
                    reverdicts=reverdicts,
                )
            )
            self.rt.note_autonomy()
            if reloading.watched_files(self.options.config_path, self.config) != files:
                self._restart_watch()
            return True

    async def _watch_files(self) -> None:
        files = reloading.watched_files(self.options.config_path, self.config)
        try:
            await reloading.watch(files, self.reload, self._watch_stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("watching %s failed; reload with SIGHUP", files)

    def _restart_watch(self) -> None:
        self._watch_stop.set()
        self._watch_stop = asyncio.Event()
        self.tasks.append(asyncio.create_task(self._watch_files(), name="watch-config"))

    async def _watchdog(self) -> None:
        assert self.notifier.watchdog_seconds
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(self.notifier.watchdog_seconds / 2)

    # -- the socket -------------------------------------------------------------------------

    async def _listen(self) -> None:
        path = self.socket_path
        if len(str(path).encode()) > SOCKET_PATH_MAX:
            raise DaemonFailed(
                f"socket path {path} is {len(str(path).encode())} bytes; Unix sockets allow "
                f"{SOCKET_PATH_MAX}: choose a shorter --socket"
            )
        group = self._socket_gid()
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o750)
            if group is not None:
                os.chown(path.parent, -1, group)
        _check_socket_directory(path.parent)
        if path.exists() or path.is_symlink():
            if _answers(path):
                raise DaemonFailed(
                    f"another daemon is already listening on {path} (stop it, or use --socket)"
                )
            path.unlink()  # a stale socket from a killed daemon
        old_umask = os.umask(0o117)
        try:
            self.server = await asyncio.start_unix_server(
                self._serve_client, path=str(path), limit=MAX_LINE_BYTES
            )
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o660)
        if group is not None:
            os.chown(path, -1, group)
        # Inode numbers are reused as soon as a file is deleted, so the identity is the inode
        # and its change time: a daemon stopping while a new one starts must not remove the
        # new one's socket.
        self._socket_identity = _identity(path)

    def _owns_socket(self) -> bool:
        try:
            return _identity(self.socket_path) == getattr(self, "_socket_identity", None)
        except FileNotFoundError:
            return False

    def _socket_gid(self) -> int | None:
        group = self.config.daemon.socket_group
        if group is None:
            return None
        if isinstance(group, int) or str(group).isdigit():
            return int(group)
        import grp

        try:
            return grp.getgrnam(str(group)).gr_gid
        except KeyError:
            raise DaemonFailed(f"daemon.socket_group: no group named {group!r}") from None

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        assert self.broadcaster is not None
        sock = writer.get_extra_info("socket")
        try:
            peer = peer_of(sock)
        except OSError:
            writer.close()
            return
        conn = Connection(
            peer,
            Outbox(self.config.daemon.event_queue),
            is_approver(peer, self.config.approvers),
            writer,
            asyncio.current_task(),
        )
        self.connections.add(conn)
        self.broadcaster.add(conn.outbox)
        sending = asyncio.create_task(self._send_loop(writer, conn.outbox))
        conn.tasks.add(sending)
        try:
            while True:
                if conn.backlog >= MAX_BACKLOG and not await _room(conn, sending):
                    break
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    break  # the client went away (a partial last line is dropped)
                except asyncio.LimitOverrunError as exc:
                    conn.outbox.response(
                        error(
                            None,
                            ProtocolError(
                                "line_too_long",
                                "Request too long",
                                f"a request line may be at most {MAX_LINE_BYTES} bytes; "
                                "it was skipped",
                            ),
                        )
                    )
                    if not await _skip_line(reader, exc.consumed):
                        break
                    continue
                except (ConnectionError, OSError):
                    break
                if not line.strip():
                    continue
                if not conn.greeted:
                    # The handshake is answered before anything else is read.
                    response = await self.handlers.answer(conn, line)
                    conn.outbox.response(response)
                    if response.get("error", {}).get("type") == "protocol_mismatch":
                        await asyncio.sleep(0.05)
                        break
                    continue
                task = asyncio.create_task(self._answer(conn, line))
                conn.tasks.add(task)
                conn.answering.add(task)
                task.add_done_callback(conn.tasks.discard)
                task.add_done_callback(conn.answering.discard)
        finally:
            self.broadcaster.remove(conn.outbox)
            await _finish_answers(conn, sending)
            self.connections.discard(conn)
            await _drain_then_cancel(sending, conn.outbox)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _answer(self, conn: Connection, line: bytes) -> None:
        conn.outbox.response(await self.handlers.answer(conn, line))

    async def _send_loop(self, writer: asyncio.StreamWriter, outbox: Outbox) -> None:
        try:
            while True:
                message = await outbox.queue.get()
                writer.write(message if isinstance(message, bytes) else encode(message))
                outbox.sent(message)
                await writer.drain()
        except (ConnectionError, OSError):
            pass


async def _room(conn: Connection, sending: asyncio.Task[None]) -> bool:
    """Wait until the client has read enough answers to be given more; False if it is gone."""
    while conn.backlog >= MAX_BACKLOG:
        if sending.done():
            return False
        conn.outbox.sent_some.clear()
        waiter = asyncio.ensure_future(conn.outbox.sent_some.wait())
        try:
            await asyncio.wait({waiter, sending}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
    return True


async def _finish_answers(conn: Connection, sending: asyncio.Task[None]) -> None:
    """Requests read before the end of the client's stream are still answered, unless the
    client is gone altogether (its answers cannot be sent) or they take too long."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ANSWER_GRACE
    while conn.answering and not sending.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        await asyncio.wait(
            {*conn.answering, sending}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
        )


async def _drain_then_cancel(task: asyncio.Task[None], outbox: Outbox) -> None:
    """Let queued responses go out (briefly), then stop the sender."""
    for _ in range(20):
        if outbox.queue.empty() or task.done():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _skip_line(reader: asyncio.StreamReader, buffered: int) -> bool:
    """Discard the rest of an over-long line; False if the client went away or kept going."""
    skipped = 0
    while skipped < MAX_SKIPPED_BYTES:
        await reader.readexactly(buffered)
        skipped += buffered
        try:
            await reader.readuntil(b"\n")
            return True
        except asyncio.LimitOverrunError as exc:
            buffered = exc.consumed
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return False
    return False


def _check_socket_directory(directory: Path) -> None:
    """Whoever may write in the socket's directory may replace the socket with their own and
    hear what clients send (approvals included): it must be ours and writable by us alone."""
    info = directory.stat()
    if info.st_uid != os.geteuid():
        raise DaemonFailed(
            f"the socket's directory {directory} belongs to uid {info.st_uid}, not to this "
            f"daemon's user (uid {os.geteuid()}): another user could replace the socket; use a "
            "directory of your own (--socket), or let systemd's RuntimeDirectory= make one"
        )
    if info.st_mode & 0o022:
        raise DaemonFailed(
            f"the socket's directory {directory} is writable by others (mode "
            f"{stat.S_IMODE(info.st_mode):04o}): they could replace the socket; "
            f"`chmod 750 {directory}` or choose another --socket"
        )


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _identity(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_ctime_ns)


@contextlib.asynccontextmanager
async def run_daemon(
    options: DaemonOptions, *, clock: Clock | None = None
) -> AsyncIterator[Daemon]:
    """The daemon in this event loop, ready, for tests: `async with run_daemon(opts) as d:`."""
    daemon = Daemon(options, clock=clock, install_signal_handlers=False)
    task = asyncio.create_task(daemon.serve())
    ready = asyncio.create_task(daemon.ready.wait())
    done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        task.result()  # raises what made start-up fail
    try:
        yield daemon
    finally:
        daemon.exit_reason = daemon.exit_reason or "test finished"
        daemon.should_exit.set()
        await task
