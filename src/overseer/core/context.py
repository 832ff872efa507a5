"""Everything a cycle or an action on one target needs, in one place, built once per target."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overseer.base.clock import Clock
from overseer.core.generate.generators import Generator
from overseer.core.generate.health import GeneratorHealthBoard
from overseer.core.learn.predictor import Predictor
from overseer.core.plumbing.bus import EventBus
from overseer.core.plumbing.lock import TargetLock
from overseer.core.plumbing.repo import Identity, TargetRepo
from overseer.core.plumbing.stop import StopToken
from overseer.core.plumbing.target import Target
from overseer.core.record.history import History
from overseer.core.safety.policy import CompiledPolicy
from overseer.locations import StateDir


@dataclass
class RunSettings:
    """The run parameters users of the original procedure know, with its safe defaults."""

    dry_run: bool = True  # @DryRun
    require_approval: bool = True  # @RequireHumanApproval
    max_changes: int = 1  # @MaxChangesPerRun
    area: str = "auto"  # @TargetArea
    debug: bool = False  # @Debug

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "require_approval": self.require_approval,
            "max_changes": self.max_changes,
            "area": self.area,
            "debug": self.debug,
        }


@dataclass(frozen=True)
class Actor:
    """Who asked for an action: recorded with every approval, rejection and rollback."""

    user: str
    uid: int

    @classmethod
    def current(cls) -> Actor:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = f"uid {os.getuid()}"
        return cls(user, os.getuid())


SYSTEM = Actor("overseer", -1)


@dataclass
class Context:
    target: Target
    policy: CompiledPolicy
    history: History
    bus: EventBus
    clock: Clock
    state: StateDir
    identity: Identity
    generators: list[Generator] = field(default_factory=list)
    # Told when a generator fails on its own account, so the rest of the cycle and the next
    # ones skip it; None: nobody keeps count (a cycle handed its generators directly).
    generator_health: GeneratorHealthBoard | None = None
    stop: StopToken = field(default_factory=StopToken)
    predictor: Predictor | None = None
    # approvers.expire_after: an approval asked for longer ago than this is not given.
    approval_expiry: float | None = None

    def paused(self) -> dict[str, Any] | None:
        """The kill switch: while set, no cycle starts and nothing is promoted."""
        return self.history.get_control("paused")

    def repo(self) -> TargetRepo:
        return self.target.repo()

    def worktree_path(self, name: str) -> Path:
        return self.state.worktrees / self.target.key / name

    def lock(self, wait: float = 0.0) -> TargetLock:
        return TargetLock(self.state.locks / f"{self.target.key}.lock", wait=wait)
