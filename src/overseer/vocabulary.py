"""The words every layer shares: the phases, an attempt's statuses and the moves allowed between
them, the events (past tense) and how each describes itself, and the shape of a status.

It depends on nothing but the standard library, so the core, the daemon, the client, the CLI
and the TUI all import it, and none of them keeps a copy of its own: a status, a phase or an
event's fields are spelled in one place. Events cross the socket as JSON objects; `Event.to_dict`
and `event_from_dict` are the two directions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Self, TypedDict, TypeVar, dataclass_transform

T = TypeVar("T")


class Phase(StrEnum):
    """The seven phases of a cycle, in order, as users know them."""

    ANALYZE = "ANALYZE"
    GENERATE = "GENERATE"
    SAFETY = "SAFETY"
    DEPLOY = "DEPLOY"
    EVALUATE = "EVALUATE"
    LEARN = "LEARN"
    RECORD = "RECORD"


PHASES: tuple[Phase, ...] = tuple(Phase)


class AttemptStatus(StrEnum):
    """Where an attempt is. Only `running` and `promoting` are in progress: a process killed
    at any point leaves one of those behind, and start-up recovery settles it."""

    #: between GENERATE and the end of EVALUATE, in a cycle
    RUNNING = "running"
    #: the target branch is being moved to its commit
    PROMOTING = "promoting"
    #: evaluated and waiting for a human's decision
    AWAITING_APPROVAL = "awaiting_approval"
    #: may be promoted, and waits: for a clean working tree, a resume, an evaluable head
    READY_TO_PROMOTE = "ready_to_promote"
    #: on the target branch
    PROMOTED = "promoted"
    #: reverted by a new commit
    ROLLED_BACK = "rolled_back"
    #: a human said no
    REJECTED = "rejected"
    #: it could not be made, or its evaluation failed
    FAILED = "failed"
    #: SAFETY refused it
    DENIED = "denied"
    #: evaluated in isolation; nothing was changed
    DRY_RUN = "dry_run"
    #: its process stopped before it was settled
    INTERRUPTED = "interrupted"
    #: nobody decided in time
    EXPIRED = "expired"
    #: promoted, failed its post-promotion check, and could not be reverted: a human must
    REGRESSED = "regressed"
    #: overseer (or a generator's service) failed; not held against the change, tried again
    ERROR = "error"

    @property
    def in_progress(self) -> bool:
        return self in IN_PROGRESS

    @property
    def waiting(self) -> bool:
        return self in WAITING


S = AttemptStatus
IN_PROGRESS = frozenset({S.RUNNING, S.PROMOTING})
WAITING = frozenset({S.AWAITING_APPROVAL, S.READY_TO_PROMOTE})
# Attempts whose change must not be proposed again for the same code.
SETTLED_AGAINST = frozenset({S.REJECTED, S.FAILED, S.DENIED, S.ROLLED_BACK, S.EXPIRED, S.REGRESSED})
# Attempts whose finding a human may open again (`overseer retry`): what they settled is
# settled for every later cycle (a dry run: for later dry runs).
RETRYABLE = SETTLED_AGAINST | {S.DRY_RUN}
# The decision recorded (in `approvals`) on attempts whose finding was opened again.
RETRIED = "retried"
# Where an attempt's own work has ended (its LEARN and RECORD close it, with completed_at).
FINAL = frozenset(
    {S.PROMOTED, S.FAILED, S.DENIED, S.DRY_RUN, S.INTERRUPTED, S.ERROR, S.ROLLED_BACK, S.REGRESSED}
)

#: Every move an attempt may make. Anything else is a bug, refused by the one function that
#: moves attempts (core/lifecycle.py).
TRANSITIONS: dict[AttemptStatus, frozenset[AttemptStatus]] = {
    S.RUNNING: frozenset(
        # settled by its cycle; waiting for a human; promoting itself, or deferred before it
        # could (paused); PROMOTED only when recovery finds its commit on the branch
        {
            S.AWAITING_APPROVAL,
            S.READY_TO_PROMOTE,
            S.PROMOTING,
            S.PROMOTED,
            S.FAILED,
            S.DENIED,
            S.DRY_RUN,
            S.INTERRUPTED,
            S.ERROR,
        }
    ),
    S.PROMOTING: frozenset(
        # promoted; deferred (a dirty tree, a pause, an unevaluable head); failed after a
        # rebase; back where it came from when the promotion broke; closed by recovery
        {S.PROMOTED, S.READY_TO_PROMOTE, S.FAILED, S.RUNNING, S.INTERRUPTED, S.ERROR}
    ),
    S.AWAITING_APPROVAL: frozenset({S.READY_TO_PROMOTE, S.REJECTED, S.EXPIRED}),
    S.READY_TO_PROMOTE: frozenset(
        # deferred again (a pause) keeps it here; PROMOTED only when recovery finds it on the
        # branch
        {S.PROMOTING, S.READY_TO_PROMOTE, S.PROMOTED, S.REJECTED, S.EXPIRED, S.FAILED}
    ),
    S.PROMOTED: frozenset({S.ROLLED_BACK, S.REGRESSED}),
    S.REGRESSED: frozenset({S.ROLLED_BACK}),
    **{
        status: frozenset()
        for status in (
            S.ROLLED_BACK,
            S.REJECTED,
            S.FAILED,
            S.DENIED,
            S.DRY_RUN,
            S.INTERRUPTED,
            S.EXPIRED,
            S.ERROR,
        )
    },
}


class IllegalMove(Exception):
    """An attempt was asked to move where it may not go (a bug, never a user's mistake)."""


def check_move(before: str, after: AttemptStatus) -> None:
    if after not in TRANSITIONS[AttemptStatus(before)]:
        raise IllegalMove(f"an attempt may not go from {before} to {after.value}")


class CycleStatus(StrEnum):
    RUNNING = "running"
    OK = "ok"  # it ran, whatever its attempts' outcomes
    FAILED = "failed"  # it could not do its work (an analysis that failed, an overseer error)
    INTERRUPTED = "interrupted"


class AttemptRow(TypedDict, total=False):
    """One attempt as the history stores it (the `improvements` table, one column a key) and
    as it crosses the socket. The columns of the original procedure, plus status and
    provenance; JSON columns come back decoded."""

    improvement_id: str
    cycle_id: str
    target: str
    target_path: str
    target_branch: str
    base_commit: str
    status: AttemptStatus
    phase: str | None
    dry_run: int
    analysis_results: dict[str, Any] | None
    generator: str | None
    finding_kind: str | None
    finding: dict[str, Any] | None
    fingerprint: str | None
    target_file: str | None
    files_changed: list[str] | None
    lines_changed: int | None
    generated_code: str | None
    change_type: str | None
    risk_level: str | None
    stated_risk: str | None
    risk_reasons: list[str] | None
    verdict: str | None
    impact: str | None
    rationale: str | None
    summary: str | None
    approval_required: int | None
    git_branch: str | None
    git_commit_hash: str | None
    success_score: float | None
    tests_passed: int | None
    tests_failed: int | None
    tests_skipped: int | None
    evaluation: dict[str, Any] | None
    performance_delta: float | None
    was_deployed: int
    was_rolled_back: int
    promoted_at: str | None
    push_result: str | None
    started_at: str
    completed_at: str | None
    rolled_back_at: str | None
    rolled_back_by: str | None
    rollback_reason: str | None
    revert_commit_hash: str | None
    approved_by: str | None
    awaiting_since: str | None
    failure_reason: str | None
    policy_version: str | None
    policy_facts: dict[str, Any] | None
    generation: dict[str, Any] | None
    watch: dict[str, Any] | None
    similar_rejections: list[dict[str, Any]] | None
    verdict_detail: dict[str, Any] | None
    phase_timings: dict[str, float] | None
    # A model's rounds (core/generate/repair.py): each one's prompt, replies, tokens and
    # verdict, and what it was shown of the round before.
    rounds: list[dict[str, Any]] | None
    repair_rounds_used: int | None  # rounds after the first: 0 when the first one was it


def committed(row: AttemptRow) -> str:
    """The commit of an attempt that got past DEPLOY, as every attempt that waits, promotes,
    is promoted or is rolled back did; one without a commit here is a broken record."""
    commit = row.get("git_commit_hash")
    if commit is None:
        raise ValueError(f"attempt {row.get('improvement_id', '?')} has no commit")
    return commit


# -- events --------------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    """The one timestamp format: ISO 8601, UTC, millisecond precision."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def local_time(stamp: str | None) -> str:
    """A stored timestamp as a person reads it: local time, to the second."""
    if not stamp:
        return "-"
    return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")


class Tone(StrEnum):
    """How an event's line should catch the eye (a terminal colours it, a log does not)."""

    PLAIN = "plain"
    HEADING = "heading"  # a cycle begins
    GOOD = "good"
    NOTICE = "notice"  # something waits, or was held back
    BAD = "bad"
    LOUD = "loud"  # a human must act


_REQUIRED: Any = object()  # a field declared without a default


class _Factory:
    """A field's default made anew for each record (a list, a dict)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], T]) -> T:
    """A mutable default, as `dataclasses.field(default_factory=…)` gives it."""
    made: T = _Factory(default_factory)  # type: ignore[assignment]  # replaced at __init__
    return made


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(field,))
class Record:
    """A frozen record whose fields are keyword-only, declared by annotations as a frozen
    `kw_only` dataclass's are (type checkers read them the same way).

    Not a dataclass because of the start-up of every client command, which imports this
    module: `dataclasses` compiles six methods per class, and for the thirty events that was
    ~40 ms (and `dataclasses` itself imports `inspect`); these share one set of methods."""

    #: the fields, in declaration order (a base's first), each with its default
    _defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        defaults = dict(cls._defaults)
        own = vars(cls)
        for name, annotation in own.get("__annotations__", {}).items():
            if not str(annotation).startswith("ClassVar"):
                defaults[name] = own.get(name, _REQUIRED)
        cls._defaults = defaults

    def __init__(self, **values: Any) -> None:
        name = type(self).__name__
        unknown = values.keys() - self._defaults.keys()
        if unknown:
            raise TypeError(f"{name} has no field {', '.join(sorted(unknown))}")
        for key, default in self._defaults.items():
            if key in values:
                value = values[key]
            elif default is _REQUIRED:
                raise TypeError(f"{name} needs the field {key}")
            else:
                value = default.make() if isinstance(default, _Factory) else default
            object.__setattr__(self, key, value)

    def fields(self) -> dict[str, Any]:
        """The fields and their values."""
        return {key: getattr(self, key) for key in self._defaults}

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed."""
        return type(self)(**{**self.fields(), **changes})

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot set {key}")

    def __delattr__(self, key: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot delete {key}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.fields() == other.fields()

    def __hash__(self) -> int:
        return hash((type(self), *self.fields().values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{key}={value!r}" for key, value in self.fields().items())
        return f"{type(self).__name__}({shown})"


EVENT_TYPES: dict[str, type[Event]] = {}


class Event(Record):
    """Something that happened. `at` is set by the bus that publishes it."""

    kind: ClassVar[str] = "Event"
    tone: ClassVar[Tone] = Tone.PLAIN
    #: how loud the daemon's log says it (a logging level name): most events are news, a few
    #: need someone to act and go out as errors (journald's `-p err` shows them)
    log_level: ClassVar[str] = "info"
    at: datetime | None = None

    def __init_subclass__(cls, *, family: bool = False, **kwargs: Any) -> None:
        """Registers each event under its name (`family`: a base of events, not one)."""
        super().__init_subclass__(**kwargs)
        if not family:
            cls.kind = cls.__name__
            EVENT_TYPES[cls.kind] = cls

    def to_dict(self) -> dict[str, Any]:
        data = {"kind": self.kind, **self.fields()}  # `at` first of the fields
        data["at"] = iso(self.at) if self.at else None
        return data

    def describe(self) -> str | None:
        """One line for a person (a terminal, a log); None: not worth a line of its own."""
        return None

    @property
    def short_id(self) -> str:
        """The attempt's id as people see it, where the event is about one (else empty)."""
        return str(getattr(self, "improvement_id", "") or "")[:8]

    @property
    def stamp(self) -> str:
        return iso(self.at) if self.at else ""


def event_from_dict(data: dict[str, Any]) -> Event | None:
    """An event as it crossed the socket, typed again; None for a kind this side does not
    know (a newer daemon) or fields that do not fit."""
    cls = EVENT_TYPES.get(str(data.get("kind")))
    if cls is None:
        return None
    fields = {k: v for k, v in data.items() if k in cls._defaults}
    at = data.get("at")
    try:
        fields["at"] = datetime.fromisoformat(at) if isinstance(at, str) else None
        return cls(**fields)
    except (TypeError, ValueError):
        return None


class AttemptEvent(Event, family=True):
    """Something that happened to one attempt."""

    improvement_id: str


class PhaseEvent(Event, family=True):
    """A phase of a cycle, of one attempt in it when `improvement_id` is set."""

    cycle_id: str
    improvement_id: str | None
    phase: str


def because(reason: str | None) -> str:
    """`: why`, after what a person did, when they said why."""
    return f": {reason}" if reason else ""


class CycleStarted(Event):
    tone = Tone.HEADING
    cycle_id: str
    target: str
    branch: str
    dry_run: bool
    parameters: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        p = self.parameters
        mode = "dry-run" if self.dry_run else "dry-run OFF"
        return (
            f"Cycle {self.cycle_id[:8]} ({local_time(self.stamp)[11:]}) on "
            f"{self.target}@{self.branch} · {mode} · autonomy {p.get('autonomy')} · max "
            f"{p.get('max_changes')} change(s) · area {p.get('area')}"
        )


class PhaseStarted(PhaseEvent):
    """A phase began (its end is PhaseFinished, whatever happened)."""


class PhaseProgress(PhaseEvent):
    message: str
    done: int | None = None
    total: int | None = None


PHASE_MARKS = {"ok": "✔", "failed": "✘", "skipped": "–"}


class PhaseFinished(PhaseEvent):
    duration: float
    outcome: str  # ok | failed | skipped
    summary: str
    # Milliseconds of the phase spent waiting for external programs, by kind (tests, ruff,
    # git, …): the rest of `duration` is overseer's own work.
    external_ms: dict[str, float] = field(default_factory=dict)

    @property
    def mark(self) -> str:
        return PHASE_MARKS.get(self.outcome, "?")

    def describe(self) -> str:
        took = f"{self.duration:5.1f} s" if self.outcome != "skipped" else "      "
        return f"  {self.mark} {self.phase:<9} {took}  {self.summary}"


def output_lines(output: str, lines: int = 15, indent: str = "      │ ") -> str:
    """The last lines a command printed, indented under the line that says what failed."""
    tail = output.rstrip().splitlines()[-lines:]
    if not tail:
        return f"\n{indent}(it printed nothing)"
    return "".join(f"\n{indent}{line}" for line in tail)


class TargetNotEvaluable(Event):
    """ANALYZE could not establish what the target's tests say at its head (the test command
    is missing, fails before any test runs, collects nothing, times out): no change can be
    judged. The target's problem, not a change's: no attempt is made, none is held against a
    finding, and the circuit breaker does not count it; the next cycle tries again."""

    tone = Tone.BAD
    log_level = "error"
    cycle_id: str
    target: str
    commit: str
    reason: str
    command: str = ""
    output: str = ""  # the last lines the command printed

    def describe(self) -> str:
        ran = f"\n      $ {self.command}" if self.command else ""
        return (
            f"  ✘ {self.target} cannot be evaluated at {self.commit[:7]}: {self.reason}"
            + ran
            + output_lines(self.output)
        )


class TargetUnhealthy(Event):
    """A target cannot be used now (its directory is gone, it is not a git repository, its
    branch is missing): no cycle runs on it until it can. Said once when it starts."""

    tone = Tone.BAD
    log_level = "error"
    target: str
    reason: str

    def describe(self) -> str:
        return (
            f"Error in target {self.target}: cannot be used: {self.reason}; no cycle runs on "
            "it until it can"
        )


class ApprovalRequested(AttemptEvent):
    tone = Tone.NOTICE
    target: str
    target_file: str | None
    change_type: str | None
    risk_level: str | None
    reasons: list[str] = field(default_factory=list)

    def describe(self) -> str:
        iid = self.short_id
        return (
            f"  ⏸ awaiting approval: {iid} ({self.risk_level} risk). Decide with "
            f"`overseer approve {iid}` or `overseer reject {iid} --reason …`"
        )


class ChangeApproved(AttemptEvent):
    user: str
    reason: str | None

    def describe(self) -> str:
        return f"  ✔ {self.short_id} approved by {self.user}{because(self.reason)}"


class ChangeRejected(AttemptEvent):
    user: str
    reason: str

    def describe(self) -> str:
        return f"  ✘ {self.short_id} rejected by {self.user}: {self.reason}"


class FindingReopened(AttemptEvent):
    """A human let a settled finding be proposed again (`overseer retry`): the attempts that
    settled it no longer keep later cycles from choosing it on the same code."""

    tone = Tone.NOTICE
    user: str
    reason: str | None
    finding: str  # `F401 in pkg/util.py`
    attempts: list[str] = field(default_factory=list)  # every attempt that had settled it

    def describe(self) -> str:
        return (
            f"  ↻ {self.short_id}: {self.finding} may be proposed again (retried by "
            f"{self.user}{because(self.reason)})"
        )


class ChangePromoted(AttemptEvent):
    tone = Tone.GOOD
    target: str
    branch: str
    commit: str
    pushed: bool | None = None

    def describe(self) -> str:
        pushed = ""
        if self.pushed is not None:
            pushed = " · pushed" if self.pushed else " · push FAILED"
        return f"  ⇒ {self.short_id} promoted to {self.branch} @ {self.commit[:7]}{pushed}"


class RepairRequested(AttemptEvent):
    """A model's candidate failed, and the model is asked again, shown the failure."""

    tone = Tone.NOTICE
    round: int  # the round about to be asked: 2, 3, …
    rounds: int  # at most
    phase: str  # where the round before failed: GENERATE, SAFETY or EVALUATE
    reason: str

    def describe(self) -> str:
        return (
            f"  ↻ {self.short_id}: asking the model again (round {self.round} of "
            f"{self.rounds}) after {self.phase} failed: {self.reason}"
        )


class PromotionDeferred(AttemptEvent):
    tone = Tone.NOTICE
    reason: str

    def describe(self) -> str:
        return f"  ⏸ {self.short_id}: {self.reason}"


class ChangeRolledBack(AttemptEvent):
    revert_commit: str
    user: str
    reason: str

    def describe(self) -> str:
        return (
            f"  ↩ {self.short_id} rolled back by {self.user} with revert "
            f"{self.revert_commit[:7]}: {self.reason}"
        )


class AttemptMoved(AttemptEvent):
    """An attempt changed status: written by the one function that moves attempts, so the
    event log holds every move, whatever caused it."""

    before: str
    after: str
    reason: str | None = None


class AttemptFinished(AttemptEvent):
    status: str
    reason: str | None = None


class CycleFinished(Event):
    cycle_id: str
    target: str
    status: str
    summary: str
    attempts: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"Cycle {self.cycle_id[:8]} finished ({self.status}): {self.summary}"


class CIPolled(AttemptEvent):
    """One poll of the external CI's status command: recorded as it happens, so a crash while
    waiting for CI loses none of them."""

    commit: str
    poll: int
    status: str  # pass | fail | pending | unknown
    output: str = ""

    def describe(self) -> str:
        return (
            f"  ⋯ {self.short_id}: CI says {self.status} for {self.commit[:7]} (poll {self.poll})"
        )


class RegressionFound(AttemptEvent):
    """The post-promotion watch found a regression, and reverted it or needs a human."""

    tone = Tone.BAD
    reason: str
    action: str  # reverted | needs a human
    detail: str = ""

    def describe(self) -> str:
        if self.action == "reverted":
            return f"  ↩ {self.short_id}: {self.reason}; reverted"
        return f"  ⚠ {self.short_id}: {self.reason}; NOT reverted, a human must: {self.detail}"


class ApprovalExpired(AttemptEvent):
    tone = Tone.NOTICE
    waited: str  # since when it waited

    def describe(self) -> str:
        return f"  ⌛ {self.short_id}: approval expired (waiting since {local_time(self.waited)})"


class DaemonPaused(Event):
    tone = Tone.NOTICE
    user: str
    reason: str | None

    def describe(self) -> str:
        return f"Paused by {self.user}{because(self.reason)}"


class DaemonResumed(Event):
    user: str

    def describe(self) -> str:
        return f"Resumed by {self.user}"


class CircuitBreakerTripped(Event):
    tone = Tone.LOUD
    log_level = "warning"
    target: str
    attempts: list[str]
    reason: str

    def describe(self) -> str:
        return f"⛔ {self.reason}"


class AutonomyChanged(Event):
    tone = Tone.LOUD
    before: str | None
    after: str
    policy: str
    policy_version: str

    def describe(self) -> str:
        return (
            f"Autonomy changed: {self.before or 'unset'} → {self.after} ({self.policy}, "
            f"{self.policy_version})"
        )


class CycleSkipped(Event):
    target: str | None
    reason: str

    def describe(self) -> str:
        return f"Cycle skipped: {self.reason}"


class ConfigReloaded(Event):
    files: list[str]
    policy_version: str
    changes: list[str] = field(default_factory=list)
    # Recent and waiting attempts the new policy would have judged differently.
    reverdicts: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        changes = "; ".join(self.changes) or "no effective change"
        line = f"Configuration reloaded (policy {self.policy_version}): {changes}"
        for r in self.reverdicts:
            b, a = r["before"], r["after"]
            line += (
                f"\n    {r['improvement_id'][:8]} ({r['status']}) would now be {a['decision']}/"
                f"{a['risk']}, was {b['decision']}/{b['risk']}"
                + (f": {'; '.join(r['why'])}" if r.get("why") else "")
            )
        return line


class ReloadFailed(Event):
    tone = Tone.BAD
    files: list[str]
    problems: list[str]

    def describe(self) -> str:
        return "Reload rejected, keeping the last good configuration:" + "".join(
            f"\n    {p}" for p in self.problems
        )


class ErrorRaised(Event):
    tone = Tone.BAD
    log_level = "error"
    where: str
    message: str

    def describe(self) -> str:
        return f"Error in {self.where}: {self.message}"


class EventsDropped(Event):
    """Told to a client too slow to keep up: it missed this many events."""

    tone = Tone.NOTICE
    count: int

    def describe(self) -> str:
        return f"… {self.count} event(s) dropped: this client was too slow"


class DaemonStarted(Event):
    pid: int
    socket: str
    targets: list[str]

    def describe(self) -> str:
        return f"Daemon started (pid {self.pid}) on {self.socket} for {', '.join(self.targets)}"


class DaemonStopping(Event):
    reason: str

    def describe(self) -> str:
        return f"Daemon stopping: {self.reason}"


class AttemptsRecovered(Event):
    """Start-up found attempts a killed process left behind and closed them."""

    target: str
    closed: list[str]
    promoted: list[str]
    worktrees_removed: int

    def describe(self) -> str:
        parts = []
        if self.closed:
            parts.append(f"closed {len(self.closed)} interrupted attempt(s)")
        if self.promoted:
            parts.append(f"recorded {len(self.promoted)} promotion(s) found on the branch")
        if self.worktrees_removed:
            parts.append(f"removed {self.worktrees_removed} stray worktree(s)")
        return f"Recovered {self.target}: " + ", ".join(parts or ["branches cleaned"])


# A reason given with a decision (approve, reject, rollback, pause): kept, shown in lists and
# next to similar proposals, so it is a sentence or a paragraph, not a file.
MAX_REASON_CHARS = 2000


def reason_too_long(reason: str | None) -> str | None:
    """Why a decision's reason is refused, or None: the same words whoever checks it (the
    command line before it asks anyone, the core without a daemon)."""
    if reason is None or len(reason) <= MAX_REASON_CHARS:
        return None
    return (
        f"a reason may be at most {MAX_REASON_CHARS} characters; this one has "
        f"{len(reason):,} (the attempt's diff and history hold the details)"
    )


class Pause(TypedDict, total=False):
    """The kill switch, as the history keeps it."""

    user: str
    uid: int
    reason: str | None
    at: str


def paused_text(pause: Pause) -> str:
    """Why nothing runs, in one phrase: who paused, since when, and why."""
    since = f" since {local_time(pause.get('at'))}" if pause.get("at") else ""
    reason = f": {pause['reason']}" if pause.get("reason") else ""
    return f"overseer is paused (by {pause.get('user', '?')}{since}{reason})"


# -- the status a daemon (or, without one, the state directory) gives ------------------------


class Spent(TypedDict):
    used: int
    limit: int


class Budget(TypedDict):
    """Real changes spent on a target against the policy's limits, and a cooldown after a
    rollback, if one runs."""

    hour: Spent
    day: Spent
    cooldown_until: str | None


class LastCycle(TypedDict, total=False):
    """The last cycle that finished on a target: when, and how it ended. `not_evaluable` and
    `output_tail` when ANALYZE could not judge the target (its tests do not run)."""

    cycle_id: str
    target: str
    started_at: str
    finished_at: str | None
    status: str  # CycleStatus
    summary: str | None
    dry_run: bool
    not_evaluable: str | None
    command: str | None
    output_tail: str | None


# The funnel of new tests, per generator (`overseer stats`, the TUI's stats): the stages in
# order, each a subset of the one before it, and what a person calls them.
FUNNEL = ("generated", "collected", "reliable", "raised_coverage", "approved", "kept")
FUNNEL_TITLES = (
    "generated",
    "collected",
    "passed reliably",
    "raised coverage",
    "approved",
    "kept",
)


def budget_text(budget: Budget) -> str:
    """A target's spend against the policy's limits, in words: `changes this hour 1 of 3 ·
    today 1 of 10`, and the cooldown after a rollback if one runs."""
    hour, day = budget["hour"], budget["day"]
    text = f"changes this hour {hour['used']} of {hour['limit']} · today {day['used']} of {day['limit']}"
    if budget.get("cooldown_until"):
        text += f" · cooling down after a rollback until {local_time(budget['cooldown_until'])}"
    return text


def success_text(probability: float | None) -> str:
    """The success predictor's estimate, in words: `predicted success 50 %`."""
    if probability is None:
        return "predicted success unknown"
    return f"predicted success {probability * 100:.0f} %"


def last_cycle_text(cycle: LastCycle, *, named: bool = False) -> str:
    """`last cycle 2026-05-01 12:00:03 (dry run): ok — 1a2b3c4d dry_run`, for a person
    (`named`: with the target, `last cycle on proj …`)."""
    when = local_time(cycle.get("finished_at") or cycle.get("started_at"))
    if named:
        when = f"on {cycle.get('target')} {when}"
    mode = " (dry run)" if cycle.get("dry_run") else ""
    if cycle.get("not_evaluable"):
        return f"last cycle {when}{mode}: FAILED — cannot be evaluated: {cycle['not_evaluable']}"
    status = str(cycle.get("status") or "?")
    outcome = status if status == CycleStatus.OK else status.upper()
    summary = cycle.get("summary")
    return f"last cycle {when}{mode}: {outcome}" + (f" — {summary}" if summary else "")


class TargetStatus(TypedDict, total=False):
    name: str
    path: str
    branch: str | None
    budget: Budget
    #: False when the target cannot be used now (its directory is gone, it is not a git
    #: repository, its branch is missing): no cycle runs on it; `reason` says why
    healthy: bool
    reason: str | None
    last_cycle: LastCycle | None
    #: running | waiting (due, waiting for a cycle slot) | idle | paused | unusable
    state: str
    #: its running cycle (cycle_id, phase, improvement_id, since, progress), else None
    current: dict[str, Any] | None
    #: its schedule, described ("every 30m"): its own, or the top-level one
    schedule: str
    #: when its next cycle is due (ISO), None without a daemon or while none is scheduled
    next_run: str | None
    #: why its test runs are not confined (core/plumbing/confine.py); absent when they are
    unconfined: str


class GeneratorStatus(TypedDict, total=False):
    name: str
    label: str
    healthy: bool | None
    reason: str | None
    since: str | None
    next_check: str | None


class RunDefaults(TypedDict):
    """What a cycle will do, with the rule applied once (core/settings.py)."""

    dry_run: bool
    dry_run_why: str
    require_approval: bool
    max_changes: int


class NotificationStatus(TypedDict):
    """One notification receiver, as a daemon's status shows it."""

    url: str  # masked: no credentials
    ok: bool  # its last send went through (or nothing was sent yet)
    last_error: str | None
    failures: int  # sends that failed, retries included
    sent: int
    dropped: int  # not sent: over its hourly limit, a full queue, or out of retries
    pending: int  # waiting to be sent or tried again


class StatusSnapshot(TypedDict, total=False):
    """`overseer status --json`, the `status` answer and the TUI's status bar."""

    state: str  # idle | running | paused | stopping | not running
    reason: str  # without a daemon: why none answered
    paused: Pause | None
    autonomy: str
    policy: str
    policy_version: str
    dry_run: bool
    dry_run_why: str
    require_approval: bool
    max_changes: int
    schedule: str
    next_run: str | None
    current: dict[str, Any] | None
    targets: list[TargetStatus]
    generators: list[GeneratorStatus]
    generators_at: str | None  # without a daemon: when the last run recorded their health
    pending_approvals: list[dict[str, Any]]
    queue: int
    clients: int
    subscribers: int
    pid: int
    version: str
    started_at: str
    socket: str
    state_dir: str
    history_problem: str | None
    last_cycle: LastCycle | None  # the last cycle that finished, on any target
    notifications: list[NotificationStatus]  # a daemon's receivers (config `notify`)
