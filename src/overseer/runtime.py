"""Building what a command needs from the configuration: targets, policy, history, contexts.

Shared by the CLI and (later) the daemon, so both see the same targets the same way.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from overseer.base.clock import Clock, SystemClock, iso
from overseer.config import OverseerConfig, TargetConfig
from overseer.core.context import Context
from overseer.core.generate.generators import Generator, build_generators
from overseer.core.generate.health import GeneratorHealth, GeneratorHealthBoard
from overseer.core.learn.predictor import Predictor
from overseer.core.plumbing import started
from overseer.core.plumbing.bus import EventBus
from overseer.core.plumbing.repo import Identity
from overseer.core.plumbing.secrets import Redactor, install, redact_logs
from overseer.core.plumbing.slots import TEST_SLOTS
from overseer.core.plumbing.target import resolve_target
from overseer.core.record.history import History, HistoryError
from overseer.core.safety.policy import CompiledPolicy, load_policy
from overseer.core.safety.validate import protected_for
from overseer.locations import StateDir, resolve_state_dir
from overseer.vocabulary import AttemptRow, AutonomyChanged, ErrorRaised, GeneratorStatus

log = logging.getLogger(__name__)


class TargetNotFound(Exception):
    pass


@dataclass
class Runtime:
    """One configuration, one state directory, one clock and one event bus."""

    config: OverseerConfig
    state: StateDir
    clock: Clock
    bus: EventBus
    policy: CompiledPolicy
    redactor: Redactor
    #: a reader's runtime (history, show, status, stats): it opens the history read-only
    read_only: bool = False
    _history: History | None = None
    _health: GeneratorHealthBoard | None = None
    _predictor: Predictor | None = None
    # The daemon's lanes build contexts at once: the health board and the predictor are made
    # once, whichever asks first (a reload rebuilds the board).
    _making: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(
        cls,
        config: OverseerConfig,
        state_dir: Path | None,
        clock: Clock | None = None,
        *,
        read_only: bool = False,
    ) -> Runtime:
        clock = clock or SystemClock()
        state = StateDir(resolve_state_dir(state_dir, config.state_dir))
        policy = load_policy(config.policy)
        redactor = Redactor(policy.policy.secrets.env)
        install(redactor)  # every capture point (test output, model replies) uses this one
        redact_logs(redactor)
        bus = EventBus(clock, redact=redactor.value)
        TEST_SLOTS.set_limit(config.daemon.max_test_runs)  # the process's one budget
        return cls(config, state, clock, bus, policy, redactor, read_only)

    @property
    def history(self) -> History:
        """The history database, opened on first use; from then on it records every event."""
        if self._history is None:
            if self.read_only:  # a reader: nothing created, nothing written
                self._history = History(
                    self.state.database,
                    self.clock,
                    self.redactor,
                    busy_timeout=self.config.database_lock_timeout,
                    read_only=True,
                )
                return self._history
            self.state.ensure()
            started.install(self.state.started)  # what this process starts, it records
            self._history = History(
                self.state.database,
                self.clock,
                self.redactor,
                busy_timeout=self.config.database_lock_timeout,
            )
            self.bus.subscribe(self._history.record_event)
            self.note_autonomy()
        return self._history

    def note_autonomy(self) -> None:
        """Audit the autonomy level: when it differs from the last one seen, an event says so
        (and stays in the history's event log)."""
        last = self.history.get_control("autonomy")
        now = self.policy.autonomy.value
        if last is not None and last.get("level") == now:
            return
        self.history.set_control(
            "autonomy", {"level": now, "policy": self.policy.source, "version": self.policy.version}
        )
        self.bus.emit(
            AutonomyChanged(
                before=last.get("level") if last else None,
                after=now,
                policy=self.policy.source,
                policy_version=self.policy.version,
            )
        )

    def close(self) -> None:
        if self._history is not None:
            self._history.close()
            self._history = None

    def targets(
        self, path: Path | None = None, test_command: str | None = None
    ) -> list[TargetConfig]:
        """The configured targets, or the one at `path` (configured or not)."""
        if path is None:
            if not self.config.targets:
                raise TargetNotFound(
                    "no target: pass --target PATH, or list targets in the configuration file"
                )
            chosen = list(self.config.targets)
        else:
            resolved = path.expanduser().resolve()
            match = [t for t in self.config.targets if t.path.resolve() == resolved]
            chosen = match or [TargetConfig(path=resolved)]
        if test_command:
            chosen = [t.model_copy(update={"test_command": test_command}) for t in chosen]
        return chosen

    def target_for_row(self, row: AttemptRow) -> TargetConfig:
        """The settings an attempt was made with: the configuration's, else the cycle's record."""
        path = Path(str(row["target_path"])).resolve()
        for t in self.config.targets:
            if t.path.resolve() == path:
                return t
        cycle = self.history.get_cycle(str(row["cycle_id"]))
        saved = (cycle.get("parameters") or {}).get("target_config")
        if saved:
            return TargetConfig.model_validate(saved)
        return TargetConfig(path=path, name=str(row["target"]), branch=str(row["target_branch"]))

    @property
    def predictor(self) -> Predictor:
        """One per state directory, shared by every target: it learns from all of them."""
        with self._making:
            if self._predictor is None:
                self._predictor = Predictor(self.history, self.state.root / "predictor")
            return self._predictor

    def generator_health(self) -> GeneratorHealthBoard:
        """One health record per configured generator, kept for this configuration's life."""
        with self._making:
            return self._health_board()

    def _health_board(self) -> GeneratorHealthBoard:
        if self._health is None:
            generators = build_generators(
                self.config.generators,
                history=self.history,
                secret_files=tuple(self.policy.policy.secrets.files),
                redactor=self.redactor,
            )
            board = GeneratorHealthBoard(generators, self.clock)
            board.on_change = functools.partial(self._generator_health_changed, board)
            self._health = board
        return self._health

    def generators(self) -> list[Generator]:
        """The configured generators that work now. One that does not (its check failed, or
        it failed on its own account during a cycle) is reported and left out, and checked
        again after a rest: a model server that comes up after overseer (at boot, say) is used
        from then on, without a restart."""
        return self.generator_health().usable()

    def generator_status(self) -> list[GeneratorStatus]:
        """Each configured generator's health as last seen, checking nothing (for `status`)."""
        return self._health.snapshot() if self._health is not None else []

    def _generator_health_changed(
        self, board: GeneratorHealthBoard, record: GeneratorHealth, before: bool | None
    ) -> None:
        if record.healthy:
            if before is False:
                log.warning("generator %s works again", record.label)
        else:
            problem = f"generator {record.label} is off: {record.reason}"
            log.error("%s", problem)
            self.bus.emit(ErrorRaised(where="generators", message=problem))
        # Kept in the history so that `overseer status` without a daemon can say what the
        # last run found.
        try:
            self.history.set_control(
                "generators", {"at": iso(self.clock.now()), "generators": board.snapshot()}
            )
        except HistoryError as exc:
            log.warning("the generators' health was not recorded: %s", exc)

    def reconfigure(self, config: OverseerConfig, policy: CompiledPolicy) -> None:
        self.config = config
        self.policy = policy
        # The history, the bus, the log filters and the capture points all hold this one.
        self.redactor.configure(policy.policy.secrets.env)
        self._health = None  # rebuilt (and checked) with the new settings

    def context(self, target_config: TargetConfig) -> Context:
        target = resolve_target(target_config)
        extra = protected_for(
            target.root, [p for p in (self.config.source, self.config.policy) if p]
        )
        return Context(
            target=target,
            policy=self.policy.with_protected(extra),
            history=self.history,
            bus=self.bus,
            clock=self.clock,
            state=self.state.ensure(),
            identity=Identity(self.config.git.name, self.config.git.email),
            generators=self.generators(),
            generator_health=self.generator_health(),
            predictor=self.predictor,
            approval_expiry=self.config.approvers.expire_after,
        )
