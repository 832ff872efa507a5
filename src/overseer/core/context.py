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
from overseer.core.plumbing.bytecode import BytecodeCache
from overseer.core.plumbing.lock import TargetLock
from overseer.core.plumbing.repo import Identity, TargetRepo
from overseer.core.plumbing.stop import StopToken
from overseer.core.plumbing.target import Target
from overseer.core.record.history import History
from overseer.core.safety.policy import Autonomy, CompiledPolicy
from overseer.locations import StateDir
from overseer.vocabulary import Pause


@dataclass
class RunSettings:
    """The run parameters users of the original procedure know, with its safe defaults."""

    dry_run: bool = True  # @DryRun
    require_approval: bool = True  # @RequireHumanApproval
    max_changes: int = 1  # @MaxChangesPerRun
    area: str = "auto"  # @TargetArea
    debug: bool = False  # @Debug
    #: who asked for `dry_run` (a flag, the configuration's defaults), said with the why
    dry_run_source: str = "flag or defaults.dry_run"

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "require_approval": self.require_approval,
            "max_changes": self.max_changes,
            "area": self.area,
            "debug": self.debug,
        }

    def resolved(self, policy: CompiledPolicy) -> ResolvedRun:
        """What a cycle with these settings will really do under `policy`: the one place the
        rules are written (a flag may make a run stricter than the policy, never looser)."""
        if policy.autonomy is Autonomy.OBSERVE:
            dry_run, why = True, f"the policy's autonomy is observe ({policy.source})"
        elif self.dry_run:
            dry_run, why = True, f"asked for ({self.dry_run_source})"
        else:
            dry_run, why = (
                False,
                f"asked for ({self.dry_run_source}), and autonomy {policy.autonomy.value} allows it",
            )
        cap = policy.policy.max_changes_per_run
        max_changes = min(self.max_changes, cap)
        return ResolvedRun(
            dry_run=dry_run,
            dry_run_why=why,
            max_changes=max_changes,
            max_changes_why=(
                f"capped by the policy's max_changes_per_run={cap}"
                if max_changes < self.max_changes
                else "asked for"
            ),
            require_approval=self.require_approval,
        )


@dataclass(frozen=True)
class ResolvedRun:
    """A run's settings after the policy: what a cycle does and why."""

    dry_run: bool
    dry_run_why: str
    max_changes: int
    max_changes_why: str
    require_approval: bool


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

    def paused(self) -> Pause | None:
        """The kill switch: while set, no cycle starts and nothing is promoted."""
        return self.history.paused()

    def repo(self) -> TargetRepo:
        return self.target.repo()

    def worktree_path(self, name: str) -> Path:
        return self.state.worktrees / self.target.key / name

    def bytecode(self, *, learn: bool = False) -> BytecodeCache | None:
        """The target's compiled files for a test run; `learn` only for a run of accepted code
        (a commit of the target's branch): a candidate's run must never add to them."""
        if not self.target.config.bytecode_cache:
            return None
        return BytecodeCache(self.state.bytecode / self.target.key, learn=learn)

    def lock(self, wait: float = 0.0) -> TargetLock:
        """The repository's lock (in its git directory), held while acting on it; taking it
        also checks that this state directory is the one that supervises the repository."""
        return TargetLock(
            self.repo().common_dir() / "overseer.lock", wait=wait, state_root=self.state.root
        )
