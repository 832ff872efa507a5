"""The operations people know — status, show, history, stats, approve, reject, rollback, pause,
resume, run — written once, behind both front doors: the daemon's request handlers and the
command line when no daemon runs.

Each front door only decodes, calls and encodes. What a cycle will really do (a dry run, how
many changes) is decided by core (`RunSettings.resolved`); this module asks it once and says
it the same way everywhere, so `status` cannot claim a real run while the policy forces a dry
one. A daemon passes what only it knows (the running cycle, the next scheduled run, its
clients) as a `Live` view; without one, the status says what the state directory knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from overseer import __version__
from overseer.base.clock import parse_iso
from overseer.config import TargetConfig
from overseer.core import actions
from overseer.core.analyze.features import proof, proof_text
from overseer.core.context import Actor, Context, ResolvedRun, RunSettings
from overseer.core.cycle import CycleResult, retry_ready, run_cycle
from overseer.core.learn.stats import compute_stats
from overseer.core.lifecycle import ActionRefused
from overseer.core.plumbing.confine import unconfined_because
from overseer.core.plumbing.repo import RepoError
from overseer.core.plumbing.stop import StopToken
from overseer.core.plumbing.target import resolve_target
from overseer.core.record.history import HistoryError
from overseer.core.safety.policy import rejudge
from overseer.core.safety.ratelimit import RateLimiter
from overseer.locations import StateDirUnusable
from overseer.runtime import Runtime
from overseer.vocabulary import (
    RETRYABLE,
    WAITING,
    AttemptRow,
    AttemptStatus,
    Budget,
    GeneratorStatus,
    LastCycle,
    Pause,
    StatusSnapshot,
    TargetStatus,
    local_time,
)

# What a list of attempts carries over the socket: enough for a table and a detail line,
# not the diffs, prompts and analysis (`show` has those).
LIST_COLUMNS = (
    "improvement_id", "target", "status", "phase", "change_type", "risk_level", "risk_reasons",
    "target_file", "generator", "finding_kind", "summary", "success_score", "tests_passed",
    "tests_failed", "tests_skipped", "performance_delta", "was_deployed", "was_rolled_back",
    "dry_run", "started_at", "completed_at", "rolled_back_at", "awaiting_since", "approved_by",
    "git_branch", "git_commit_hash", "revert_commit_hash", "failure_reason", "similar_rejections",
)  # fmt: skip


def light(row: AttemptRow) -> dict[str, Any]:
    return {k: row.get(k) for k in LIST_COLUMNS}


def target_problem(target: TargetConfig) -> str | None:
    """Why a target cannot be used now (its directory is gone, it is not a git repository,
    its branch is missing), or None when it can."""
    try:
        resolve_target(target)
    except RepoError as exc:
        return str(exc)
    except OSError as exc:  # a directory we may not read
        return f"{target.path}: {exc.strerror or exc}"
    return None


@dataclass(frozen=True)
class RunFlags:
    """The run flags a command was given (None: not given, the configuration decides)."""

    dry_run: bool | None = None
    require_approval: bool | None = None
    max_changes: int | None = None
    area: str | None = None


class NoHistory(Exception):
    """The state directory holds no history yet; the message says where and what to run."""


class UnknownTarget(Exception):
    """A target name that neither the configuration nor the history knows; the message lists
    the names that are known."""


class Live(Protocol):
    """What only a running daemon knows, for its status."""

    def live_status(self) -> dict[str, Any]: ...

    def live_target(self, name: str) -> TargetStatus: ...


@dataclass
class StoredStatus:
    """The part of a status read from the history and the targets' repositories (cacheable
    between events)."""

    paused: Pause | None
    budgets: dict[str, Budget]
    pending: list[dict[str, Any]]
    #: target name → why it cannot be used now (None: it can)
    problems: dict[str, str | None] = field(default_factory=dict)
    #: target name → the last cycle that finished on it
    last_cycles: dict[str, LastCycle | None] = field(default_factory=dict)
    last_cycle: LastCycle | None = None


class Application:
    """One configuration's operations, on its runtime (history, policy, generators)."""

    def __init__(
        self,
        rt: Runtime,
        targets: list[TargetConfig] | None = None,
        *,
        stop: StopToken | None = None,
        flags: RunFlags | None = None,
    ) -> None:
        self.rt = rt
        self.targets = targets if targets is not None else list(rt.config.targets)
        # The daemon's: a stop request reaches every cycle and action started from here.
        self.stop = stop
        # The daemon's run flags (`overseer daemon --no-dry-run …`): over the configuration's
        # defaults for every cycle it runs, and in its status.
        self.flags = flags or RunFlags()

    # -- the run's settings ------------------------------------------------------------------

    def run_settings(
        self,
        *,
        dry_run: bool | None = None,
        require_approval: bool | None = None,
        max_changes: int | None = None,
        area: str | None = None,
        debug: bool = False,
    ) -> RunSettings:
        """The configuration's defaults, with what a flag says instead (this call's, else the
        daemon's)."""
        d, flags = self.rt.config.defaults, self.flags
        dry_run = flags.dry_run if dry_run is None else dry_run
        require_approval = flags.require_approval if require_approval is None else require_approval
        max_changes = flags.max_changes if max_changes is None else max_changes
        area = area or flags.area
        if dry_run is None:
            source = "defaults.dry_run" if self.rt.config.source else "the built-in default"
        else:
            source = "--dry-run" if dry_run else "--no-dry-run"
        return RunSettings(
            dry_run=d.dry_run if dry_run is None else dry_run,
            require_approval=d.require_approval if require_approval is None else require_approval,
            max_changes=d.max_changes_per_run if max_changes is None else max_changes,
            area=area or d.area,
            debug=debug,
            dry_run_source=source,
        )

    def resolved(self, settings: RunSettings | None = None) -> ResolvedRun:
        return (settings or self.run_settings()).resolved(self.rt.policy)

    # -- reading -----------------------------------------------------------------------------

    def has_history(self) -> bool:
        """Raises StateDirUnusable when the state directory cannot be looked into."""
        return self.rt.state.has_database()

    def _need_history(self) -> None:
        if not self.has_history():
            raise NoHistory(
                f"no history in {self.rt.state.root} yet (run `overseer run --once --target PATH`)"
            )

    def pending(self, *, limit: int = 200) -> list[dict[str, Any]]:
        """Changes waiting for a decision (and regressions a human must revert), each with
        when its approval expires."""
        ttl = self.rt.config.approvers.expire_after
        pending = []
        statuses = (*WAITING, AttemptStatus.REGRESSED)
        for row in self.rt.history.attempts(statuses=statuses, limit=limit):
            item = light(row)
            since = row.get("awaiting_since")
            if since and row["status"] is AttemptStatus.AWAITING_APPROVAL:
                item["expires_at"] = (parse_iso(since) + timedelta(seconds=ttl)).isoformat()
            pending.append(item)
        return pending

    def stored_status(self) -> StoredStatus:
        history = self.rt.history
        limiter = RateLimiter(history, self.rt.policy, self.rt.clock)
        names = [self.target_name(t) for t in self.targets]
        return StoredStatus(
            history.paused(),
            {name: limiter.budget(name) for name in names},
            self.pending(),
            problems=self.target_problems(),
            last_cycles={name: history.last_cycle(name) for name in names},
            last_cycle=history.last_cycle(),
        )

    def target_problems(self) -> dict[str, str | None]:
        return {self.target_name(t): target_problem(t) for t in self.targets}

    @staticmethod
    def target_name(target: TargetConfig) -> str:
        return target.name or target.path.name

    def generators(self) -> tuple[list[GeneratorStatus], str | None]:
        """The generators' health: checked now by a daemon, else as the last run recorded it
        (checking here could wait on an endpoint, and a model that loads badly passes)."""
        recorded = self.rt.history.get_control("generators") or {}
        return list(recorded.get("generators", [])), recorded.get("at")

    def status(
        self,
        live: Live | None = None,
        *,
        stored: StoredStatus | None = None,
        branches: dict[str, str] | None = None,
    ) -> StatusSnapshot:
        """The status every front door shows. Without `live`, what the state directory knows
        (`state: not running`)."""
        rt = self.rt
        problem = None
        try:
            known = self.has_history() or live is not None
        except StateDirUnusable as exc:  # closed to this user, below a file: the status says so
            known, problem = False, str(exc)
        if stored is None:
            try:
                stored = self.stored_status() if known else self.unknown_status()
            except HistoryError as exc:  # unreadable: the status says so, and the rest
                stored, problem, known = self.unknown_status(), str(exc), False
        run = self.resolved()
        targets: list[TargetStatus] = []
        for t in self.targets:
            name = self.target_name(t)
            entry: TargetStatus = {"name": name, "path": str(t.path)}
            entry["branch"] = t.branch or (branches or {}).get(name)
            why = stored.problems.get(name)
            entry["healthy"] = why is None
            entry["reason"] = why
            if name in stored.budgets:
                entry["budget"] = stored.budgets[name]
            entry["last_cycle"] = stored.last_cycles.get(name)
            unconfined = unconfined_because(t)
            if unconfined:
                entry["unconfined"] = unconfined
            entry.update(self.target_state(name, t, stored, live))
            targets.append(entry)
        snapshot: StatusSnapshot = {
            "state": "not running",
            "paused": stored.paused,
            "autonomy": rt.policy.autonomy.value,
            "policy": rt.policy.source,
            "policy_version": rt.policy.version,
            "dry_run": run.dry_run,
            "dry_run_why": run.dry_run_why,
            "require_approval": run.require_approval,
            "max_changes": run.max_changes,
            "targets": targets,
            "pending_approvals": stored.pending,
            "version": __version__,
            "state_dir": str(rt.state.root),
            "history_problem": rt.history.problem if known else problem,
            "last_cycle": stored.last_cycle,
        }
        if live is None:
            generators, at = self.generators() if known else ([], None)
            snapshot["generators"] = generators
            snapshot["generators_at"] = at
        else:
            snapshot["generators"] = rt.generator_status()
            snapshot.update(live.live_status())  # type: ignore[typeddict-item]
            if snapshot.get("state") != "stopping" and stored.paused:
                snapshot["state"] = "paused"
        return snapshot

    def target_state(
        self, name: str, target: TargetConfig, stored: StoredStatus, live: Live | None
    ) -> TargetStatus:
        """A target's state, its running cycle, its schedule and its next cycle. Without a
        daemon nothing runs and nothing is due."""
        part: TargetStatus
        if live is not None:
            part = live.live_target(name)
        else:
            schedule = target.schedule or self.rt.config.schedule
            part = {
                "state": "idle",
                "current": None,
                "schedule": schedule.describe(),
                "next_run": None,
            }
        if stored.problems.get(name) is not None:
            part["state"] = "unusable"
        elif stored.paused and part["state"] != "running":
            part["state"] = "paused"
        return part

    def unknown_status(self) -> StoredStatus:
        """What a status knows without a history: whether the targets can be used."""
        return StoredStatus(None, {}, [], problems=self.target_problems())

    def history(
        self,
        *,
        target: str | None = None,
        statuses: list[str] | None = None,
        limit: int = 50,
        offset: int = 0,
        search: str | None = None,
    ) -> dict[str, Any]:
        self._need_history()
        history = self.rt.history
        chosen = tuple(statuses) if statuses else None
        rows = history.attempts(
            target=target, statuses=chosen, limit=limit, offset=offset, search=search
        )
        total = history.count_attempts(target=target, statuses=chosen, search=search)
        return {"attempts": [light(r) for r in rows], "total": total, "offset": offset}

    def show(self, attempt: str) -> dict[str, Any]:
        """An attempt's whole provenance: its row, its events, the decisions on it; for a
        feature, `feature`: the test it is for, what that test did before and does now, and
        whether the change removed its xfail mark (its `text` is the line people read)."""
        self._need_history()
        history = self.rt.history
        iid = history.resolve_id(attempt)
        row = history.get(iid)
        feature = proof(row)
        return {
            **row,
            "feature": None if feature is None else {**feature, "text": proof_text(feature)},
            "skipped_because": self.skipped_because(row),
            "events": history.events(improvement_id=iid),
            "approvals": history.approvals(iid),
        }

    def skipped_because(self, row: AttemptRow) -> str | None:
        """Why later cycles do not propose this attempt's finding again on the same code, and
        how to make them; or what opened it again. None: nothing keeps it back."""
        iid, status = row["improvement_id"], row["status"]
        if status not in RETRYABLE or not row.get("fingerprint"):
            return None
        retried = actions.retried_by(self.rt.history, iid)
        if retried is not None:
            why = f": {retried['reason']}" if retried.get("reason") else ""
            return (
                f"retried by {retried['user']} at {local_time(retried['at'])}{why} — "
                "later cycles may propose it again"
            )
        who = "later dry runs skip" if status == AttemptStatus.DRY_RUN else "later cycles skip"
        return (
            f"{who} {actions.finding_label(row)}: already tried on the same code: "
            f"{status.replace('_', ' ')} — `overseer retry {iid[:8]}` to try again"
        )

    def explain(self, attempt: str) -> dict[str, Any]:
        """Which facts and rules produced an attempt's verdict, and what today's policy says."""
        self._need_history()
        history = self.rt.history
        row = history.get(history.resolve_id(attempt))
        facts = row.get("policy_facts")
        if not isinstance(facts, dict):
            raise ActionRefused(
                f"attempt {row['improvement_id'][:8]} has no recorded verdict "
                "(it ended before SAFETY)"
            )
        now = rejudge(self.rt.policy, facts)
        detail = row.get("verdict_detail") or {}
        return {
            "improvement_id": row["improvement_id"],
            "policy_version": row.get("policy_version"),
            "facts": facts,
            "verdict": {"decision": row.get("verdict"), "risk": row.get("risk_level"), **detail},
            "current_policy": {"version": self.rt.policy.version, **now.to_dict()},
        }

    def stats(self, target: str | None = None) -> dict[str, Any]:
        """What has worked (core/learn/stats.py), for one target or all; `target` in the
        answer says which (None: all)."""
        self._need_history()
        if target is not None:
            self._known_target(target)
        return {"target": target, **compute_stats(self.rt.history, target=target)}

    def _known_target(self, name: str) -> None:
        """A target configured now, or one the history recorded (since removed from the
        configuration, its record stays readable); otherwise UnknownTarget."""
        configured = [self.target_name(t) for t in self.targets]
        if name in configured or self.rt.history.count_attempts(target=name):
            return
        raise UnknownTarget(
            f"no target named {name!r} in the configuration or the history; "
            f"configured: {', '.join(configured) or 'none'}"
        )

    # -- deciding ----------------------------------------------------------------------------

    def context(self, target: TargetConfig) -> Context:
        ctx = self.rt.context(target)
        if self.stop is not None:
            ctx.stop = self.stop
        return ctx

    def context_for(self, attempt: str) -> tuple[Context, AttemptRow]:
        """The attempt (by id or unique prefix) and a context on its target, with the settings
        it was made with."""
        self._need_history()
        history = self.rt.history
        row = history.get(history.resolve_id(attempt))
        return self.context(self.rt.target_for_row(row)), row

    def approve(self, attempt: str, actor: Actor, reason: str | None = None) -> AttemptRow:
        ctx, row = self.context_for(attempt)
        return actions.approve(ctx, row["improvement_id"], actor, reason)

    def reject(self, attempt: str, actor: Actor, reason: str) -> AttemptRow:
        ctx, row = self.context_for(attempt)
        return actions.reject(ctx, row["improvement_id"], actor, reason)

    def rollback(self, attempt: str, actor: Actor, reason: str | None = None) -> AttemptRow:
        ctx, row = self.context_for(attempt)
        return actions.rollback(ctx, row["improvement_id"], actor, reason)

    def retry(self, attempt: str, actor: Actor, reason: str | None = None) -> dict[str, Any]:
        """Let the finding an attempt settled be proposed again (recorded with who and why)."""
        self._need_history()
        history = self.rt.history
        return actions.retry(history, self.rt.bus, history.resolve_id(attempt), actor, reason)

    def pause(self, actor: Actor, reason: str | None = None) -> None:
        actions.set_paused(self.rt.history, self.rt.bus, actor, True, reason)

    def resume(self, actor: Actor) -> None:
        actions.set_paused(self.rt.history, self.rt.bus, actor, False)

    def run_once(self, target: TargetConfig, settings: RunSettings) -> CycleResult:
        """One cycle on one target — the same code path the daemon's schedule runs — then
        the promotion of changes approved while it ran."""
        ctx = self.context(target)
        result = run_cycle(ctx, settings)
        with ctx.lock(wait=5.0):
            retry_ready(ctx)
        return result
