"""The daemon's lifecycle: serve() → signals → startup → main loop → shutdown.

Shaped like uvicorn's server: the first SIGTERM or SIGINT asks for a graceful stop (no new
cycle; the running phase may finish within `daemon.shutdown_grace`, then the attempt is closed
as interrupted); a second one cancels at once (the running command's process group is killed).
SIGHUP reloads the configuration.

All blocking work on a target — its cycles, promotions, rollbacks, recovery, expiry — runs in
that target's lane (daemon/lanes.py), one job at a time, in order; the lanes of different
targets run at once, and cycles take one of `daemon.max_parallel_cycles` slots
(daemon/cycle_slots.py). The event loop only talks: to clients, to systemd, to the scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overseer.application import Application, RunFlags
from overseer.base.clock import Clock, iso
from overseer.base.problems import ProblemsError
from overseer.config import NotifyReceiver, OverseerConfig, Schedule, TargetConfig
from overseer.core.actions import expire_approvals
from overseer.core.context import Context
from overseer.core.plumbing.lock import RepositoryOwned, TargetBusy, TargetLock
from overseer.core.plumbing.repo import RepoError
from overseer.core.plumbing.stop import CycleStopped, StopToken
from overseer.core.record.history import HistoryError
from overseer.core.recovery import recover
from overseer.core.safety.policy import verdict_changes
from overseer.daemon import reload as reloading
from overseer.daemon.broadcast import Broadcaster, Outbox
from overseer.daemon.connections import Connection, Connections
from overseer.daemon.cycle_slots import CycleSlots
from overseer.daemon.handlers import Handlers
from overseer.daemon.lanes import CHECKS, Lanes, lane_of
from overseer.daemon.limits import raise_open_file_limit
from overseer.daemon.listener import Listener
from overseer.daemon.live import LiveState
from overseer.daemon.notify import Notifier
from overseer.daemon.scheduler import CycleScheduler
from overseer.locations import StateDirUnusable, resolve_socket
from overseer.notifications import Notifications
from overseer.runtime import Runtime
from overseer.vocabulary import (
    ConfigReloaded,
    CycleSkipped,
    DaemonStarted,
    DaemonStopping,
    ErrorRaised,
    Event,
    ReloadFailed,
    TargetUnhealthy,
    event_from_dict,
    paused_text,
)

if TYPE_CHECKING:  # prometheus-client is imported only when `metrics` is configured
    from overseer.metrics import MetricsServer

log = logging.getLogger(__name__)

SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with its terminating NUL


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
    #: the run flags it was started with, over the configuration's defaults
    flags: RunFlags = field(default_factory=RunFlags)


class Daemon:
    """serve() → signals → startup → main loop → shutdown; the parts do the rest: the lanes
    (daemon/lanes.py) and cycle slots (daemon/cycle_slots.py), the connections
    (daemon/connections.py), the request handlers (daemon/handlers.py) on the application
    (overseer/application.py), and the small live state they share (daemon/live.py)."""

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
        self.lanes = Lanes()
        self.cycle_slots = CycleSlots(self.config.daemon.parallel_cycles)
        self.state = LiveState(
            started_at=self.rt.clock.now(),
            socket_path=self.socket_path,
            lanes=self.lanes,
            stop=self.stop,
            schedule=self.config.schedule.describe(),
        )
        self.app = Application(self.rt, [], stop=self.stop, flags=options.flags)
        self.handlers = Handlers(self.app, self.state, lambda: self.config, self.run_cycles)
        self.ready = asyncio.Event()
        self.should_exit = asyncio.Event()
        self.force_exit = False
        self.exit_reason = ""
        # Targets whose cycle ended early (name → why): the housekeeping recovers them.
        self.unrecovered: dict[str, str | None] = {}
        # Targets that cannot be used now (name → why): no cycle, recovery or expiry runs on
        # them until they can; said once when it starts and once when it ends.
        self.unusable: dict[str, str] = {}
        self._checking = threading.Lock()  # check_targets runs in more than one thread
        # Targets whose housekeeping is queued in their lane: not queued twice.
        self._housekeeping: set[str] = set()
        self.server: Listener | None = None
        self.scheduler: CycleScheduler | None = None
        self.broadcaster: Broadcaster | None = None
        self.connections_server: Connections | None = None
        self.tasks: list[asyncio.Task[Any]] = []
        self.notifications: Notifications | None = None
        self._stop_notifying: Callable[[], None] = lambda: None
        self.metrics_server: MetricsServer | None = None
        self.instance: TargetLock | None = None
        self._watch_stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()

    @property
    def targets(self) -> list[TargetConfig]:
        return self.app.targets

    @property
    def connections(self) -> set[Connection]:
        return self.state.connections

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
        self._raise_open_file_limit()
        self.broadcaster = Broadcaster(loop)
        self.broadcaster.listeners.append(self._on_event)
        self.connections_server = Connections(
            self.state.connections, self.broadcaster, self.handlers.answer, lambda: self.config
        )
        self.rt.bus.subscribe(self._publish)
        try:
            self._start_notifications()
        except Exception as exc:  # Apprise gone since the configuration was checked
            raise DaemonFailed(f"notify: {exc}") from None
        if self.config.metrics is not None:
            self._serve_metrics(self.config.metrics.listen)
        try:
            self.app.targets = self.rt.targets(self.options.target, self.options.test_command)
        except Exception as exc:
            raise DaemonFailed(str(exc)) from None
        # A daemon that looks healthy and can do nothing is worse than one that does not
        # start: systemd shows the failure, and `overseer config check` says the same.
        unusable = {name: why for name, why in self.app.target_problems().items() if why}
        if unusable:
            raise DaemonFailed(
                "; ".join(f"target {name} cannot be used: {why}" for name, why in unusable.items())
            )
        try:
            # One daemon per state directory, for its whole life: a second one would answer
            # "cycle started" and then find every target busy.
            self.instance = TargetLock(
                self.rt.state.ensure().locks / "daemon.lock", what="the state directory"
            ).__enter__()
            _ = self.rt.history  # opened now, so it records every event from here on
        except TargetBusy as exc:
            raise DaemonFailed(f"another daemon runs on this state directory: {exc}") from None
        except (HistoryError, StateDirUnusable) as exc:  # locked, a full disk, not a directory
            raise DaemonFailed(str(exc)) from None
        # Generators checked now (a missing model, an endpoint that does not answer), so the
        # problem shows at start-up, not at the first cycle; the others keep working.
        await asyncio.to_thread(self.rt.generators)
        await asyncio.gather(
            *(self.lanes.run(lane_of(t), self._recover, t, None, True) for t in self.targets)
        )
        await self._listen()
        self.scheduler = CycleScheduler(
            self.scheduled_cycle,
            self.housekeeping,
            self.config.daemon.misfire_grace,
            self.config.daemon.housekeeping_every,
        )
        self.scheduler.set_targets(self.schedules())
        self.scheduler.start()
        self.state.scheduler = self.scheduler
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
            "ready: %d target(s), %s, at most %d cycle(s) at once, socket %s, state %s",
            len(self.targets),
            self.config.schedule.describe(),
            self.cycle_slots.limit,
            self.socket_path,
            self.rt.state.root,
        )
        self.ready.set()

    def _raise_open_file_limit(self) -> None:
        """As many descriptors as the system lets us have, and the connections far fewer, so
        a cycle's git and test commands never run out because clients hold them all."""
        soft, hard = raise_open_file_limit()
        settings = self.config.daemon
        places = settings.max_connections + settings.reserved_for_approvers
        log.info(
            "open-file limit %d (hard %d); at most %d connections (daemon.max_connections "
            "%d, and %d more for approvers)",
            soft,
            hard,
            places,
            settings.max_connections,
            settings.reserved_for_approvers,
        )
        if places > soft // 2:
            log.warning(
                "daemon.max_connections and daemon.reserved_for_approvers allow %d connections, "
                "more than half the open-file limit (%d): a flood of clients could leave a "
                "cycle's commands without descriptors; lower them, or raise LimitNOFILE=",
                places,
                soft,
            )

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
        # Every lane: their running phases finish (or are cancelled) together, within one
        # grace time, and a cycle still waiting for a slot does not start.
        if self.lanes.busy and not self.force_exit:
            log.info(
                "waiting up to %.0f s for the running phases to finish (%d job(s) in lanes)",
                grace,
                self.lanes.total,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle_or_forced(), grace)
        if self.lanes.busy:
            self.stop.cancel(f"the phase did not finish within {grace:.0f} s of the stop request")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.lanes.idle.wait(), 15)
        self._watch_stop.set()
        for task in [*self.tasks, *self.state.tasks]:
            task.cancel()
        if self.connections_server is not None:
            # Each client sees the end of its stream; its handler cleans up before the loop goes.
            await self.connections_server.close_all()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
        with contextlib.suppress(FileNotFoundError):
            # Ours is closed by now: a socket that answers belongs to a successor.
            if self._owns_socket() and not _answers(self.socket_path):
                self.socket_path.unlink()
        self.lanes.shutdown()
        self.handlers.close()
        if self.metrics_server is not None:
            await asyncio.to_thread(self.metrics_server.close)
        # DaemonStopping and what is still due
        await self._close_notifications(self.config.notify)
        if not self.lanes.busy:
            self.rt.close()
        if self.instance is not None:
            self.instance.__exit__(None, None, None)
            self.instance = None  # the state directory is free for a successor
        self.notifier.close()
        log.info("stopped")

    def _start_notifications(self) -> None:
        """The configuration's receivers (`notify`), sent to from their own thread."""
        self.notifications = Notifications.create(self.config.notify)
        self.state.notifications = self.notifications
        if self.notifications is not None:
            self._stop_notifying = self.rt.bus.subscribe(self.notifications.start())

    async def _close_notifications(self, receivers: list[NotifyReceiver]) -> None:
        """Send what is due within a short time, then stop: a receiver that does not answer
        must not hold a stop (systemd would kill us) or a reload."""
        if self.notifications is None:
            return
        self._stop_notifying()
        timeout = min(5.0, max(r.timeout for r in receivers))
        await asyncio.to_thread(self.notifications.close, timeout)

    def _serve_metrics(self, listen: str) -> None:
        from overseer.metrics import Metrics

        metrics = Metrics(
            self.app,
            dropped=lambda: Outbox.dropped_total,
            notifications=lambda: self.notifications.status() if self.notifications else [],
        )
        self.rt.bus.subscribe(metrics)
        try:
            self.metrics_server = metrics.serve(listen)
        except OSError as exc:
            raise DaemonFailed(f"metrics.listen {listen}: {exc}") from None
        log.info("metrics on %s", self.metrics_server.address)

    async def _idle_or_forced(self) -> None:
        while self.lanes.busy and not self.force_exit:
            await asyncio.sleep(0.1)

    @property
    def worker_stuck(self) -> bool:
        """A lane still at work after the stop: its thread would keep the process alive."""
        return self.lanes.busy

    # -- recovery, cycles, housekeeping (each in its target's lane) ------------------------

    def schedules(self) -> dict[str, Schedule]:
        """Each target's schedule: its own, else the top-level one."""
        return {self.app.target_name(t): t.schedule or self.config.schedule for t in self.targets}

    def context(self, target: TargetConfig) -> Context:
        return self.app.context(target)

    def _recover(
        self, target: TargetConfig, cause: str | None = None, starting: bool = False
    ) -> None:
        try:
            ctx = self.context(target)
            self.state.branches[ctx.target.name] = ctx.target.branch
            with ctx.lock(wait=10.0):
                recover(ctx, cause)
        except (RepoError, TargetBusy, HistoryError, OSError) as exc:
            if starting and isinstance(exc, RepositoryOwned):
                # Another state directory supervises it: every cycle would fail there, after
                # answering "cycle started". Said once, at the start, instead.
                raise DaemonFailed(str(exc)) from None
            # Tried again by the housekeeping (a locked database, a full disk pass).
            self.unrecovered[target.name or target.path.name] = cause
            self.rt.bus.emit(ErrorRaised(where=str(target.path), message=str(exc)))

    async def scheduled_cycle(self, target: str) -> None:
        await self.run_cycles("schedule", [target])

    async def run_cycles(
        self,
        trigger: str,
        names: list[str] | None = None,
        checked: dict[str, str | None] | None = None,
    ) -> str:
        """Start a cycle on each target named (all, without names) that has none due yet, each
        in its target's lane, and wait for them. Returns why none started, when none did.
        `checked`: what the caller's check of the targets found just now (target_problems),
        instead of checking them again."""
        if self.stop.stopping:
            return "the daemon is stopping"
        chosen = [
            t
            for t in self.targets
            if (names is None or self.app.target_name(t) in names)
            and self.app.target_name(t) not in self.state.cycling
        ]
        if not chosen:
            log.info("%s: a cycle is already due or running on each target; skipped", trigger)
            return "a cycle is already running"
        # Claimed before anything is awaited: a second run-now asked meanwhile finds them due.
        claimed = {self.app.target_name(t) for t in chosen}
        self.state.cycling |= claimed
        started: set[str] = set()  # each lets go of its claim when it ends
        try:
            paused = self.rt.history.paused()
            if paused:
                why = paused_text(paused)
                self.rt.bus.emit(CycleSkipped(target=None, reason=f"{trigger}: {why}"))
                return why
            await asyncio.to_thread(self.check_targets, checked)
            due = await asyncio.to_thread(self._last_finished, claimed)
            cycles = []
            # The longest due first: with slots short, that is the order they start in.
            for target in sorted(chosen, key=lambda t: due[self.app.target_name(t)]):
                name = self.app.target_name(target)
                if name in self.unusable:
                    self.state.cycling.discard(name)
                    self.rt.bus.emit(
                        CycleSkipped(
                            target=name,
                            reason=f"{trigger}: target {name} cannot be used: {self.unusable[name]}",
                        )
                    )
                    continue
                self.cycle_slots.register(name, due[name])
                started.add(name)
                cycles.append(self._cycle_in_lane(target))
            await asyncio.gather(*cycles)
            return ""
        finally:
            # Not those that started: a later run may have claimed them again once they ended.
            self.state.cycling -= claimed - started

    async def _cycle_in_lane(self, target: TargetConfig) -> None:
        name = self.app.target_name(target)
        try:
            await self.lanes.run(lane_of(target), self._cycle, target)
        finally:
            self.cycle_slots.withdraw(name)  # when it never reached its turn
            self.state.cycling.discard(name)

    def _last_finished(self, names: set[str]) -> dict[str, str]:
        """When each target's last cycle finished (ISO; "" for never, or unknown now)."""
        due = dict.fromkeys(names, "")
        for name in names:
            try:
                last = self.rt.history.last_cycle(name)
            except HistoryError as exc:  # the cycle will say so; the order matters less
                log.warning("when the last cycle on %s finished is unknown: %s", name, exc)
                continue
            due[name] = (last or {}).get("finished_at") or ""
        return due

    def check_targets(self, checked: dict[str, str | None] | None = None) -> dict[str, str]:
        """Which targets cannot be used now (a directory removed, a branch deleted), said at
        error level when one becomes unusable and again when it can be used. `checked`: the
        targets' problems as a check just found them (not looked at again)."""
        with self._checking:
            return self._check_targets(checked)

    def _check_targets(self, checked: dict[str, str | None] | None) -> dict[str, str]:
        problems = self.app.target_problems() if checked is None else checked
        for name, why in problems.items():
            if why is not None and self.unusable.get(name) != why:
                self.unusable[name] = why
                self.rt.bus.emit(TargetUnhealthy(target=name, reason=why))
            elif why is None and name in self.unusable:
                del self.unusable[name]
                log.warning("target %s can be used again", name)
        return dict(self.unusable)

    def _cycle(self, target: TargetConfig) -> None:
        """In the target's lane: wait for a cycle slot (the longest due first), then run."""
        name = self.app.target_name(target)
        try:
            with self.cycle_slots.slot(name, self.stop):
                self.app.run_once(target, self.app.run_settings())
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
            self.unrecovered[name] = f"the cycle ended early: {message}"
            self.rt.bus.emit(ErrorRaised(where=str(target.path), message=message))
        finally:
            self.state.ended(name)

    async def housekeeping(self) -> list[asyncio.Task[None]]:
        """Each target's in its own lane, not waited for: a long test run on one target holds
        up its own expiry only, and the next round does not queue behind it twice. Returns
        the work started (a test may wait for it)."""
        started: list[asyncio.Task[None]] = []
        if self.stop.stopping:
            return started
        with contextlib.suppress(asyncio.CancelledError):  # the daemon stopped meanwhile
            await self.lanes.run(CHECKS, self.check_targets)
        for target in list(self.targets):
            name = self.app.target_name(target)
            if name in self.unusable or name in self._housekeeping:
                continue
            self._housekeeping.add(name)
            task = asyncio.create_task(self._housekeeping_in_lane(target, name))
            self.state.tasks.add(task)
            task.add_done_callback(self.state.tasks.discard)
            started.append(task)
        return started

    async def _housekeeping_in_lane(self, target: TargetConfig, name: str) -> None:
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self.lanes.run(lane_of(target), self._housekeep, target, name)
        finally:
            self._housekeeping.discard(name)

    def _housekeep(self, target: TargetConfig, name: str) -> None:
        if self.stop.stopping:
            return
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
        data = event.to_dict()
        # Before the action that emitted it answers: a status asked next reads it.
        self.state.track(data)
        self.broadcaster.publish(data)

    def _on_event(self, e: dict[str, Any]) -> None:
        """On the loop: log it (journald sees one line per event) and tell systemd."""
        event = event_from_dict(e)
        line = event.describe() if event is not None else None
        if event is not None and line:
            level = logging.getLevelName(event.log_level.upper())
            log.log(level if isinstance(level, int) else logging.INFO, "%s", line.strip())
        if e["kind"] in ("PhaseStarted", "CycleFinished", "DaemonPaused", "DaemonResumed"):
            self.notifier.status(self.status_line())

    def status_line(self) -> str:
        if self.rt.history.paused():
            return "paused"
        running = sorted(self.state.running_now().items())
        if running:
            return "; ".join(
                f"cycle {c['cycle_id'][:8]} on {name}: {c.get('phase') or 'starting'}"
                for name, c in running
            )
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
            receivers = self.config.notify
            self.config = result.config
            self.rt.reconfigure(result.config, result.policy)
            if result.config.notify != receivers:  # the new receivers hear what follows
                await self._close_notifications(receivers)
                try:
                    self._start_notifications()
                except Exception as exc:  # Apprise gone since the daemon started
                    self.notifications = self.state.notifications = None
                    log.error("notify: %s: no notifications until this is fixed", exc)
            if self.options.target is None:
                self.app.targets = list(result.config.targets)
            if self.scheduler is not None:
                self.scheduler.set_targets(self.schedules())
            self.state.schedule = result.config.schedule.describe()
            self.cycle_slots.set_limit(result.config.daemon.parallel_cycles)
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
        assert self.connections_server is not None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o117)
        try:
            sock.bind(str(path))
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old_umask)
        self.server = Listener(sock, self.connections_server.accepted)
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
