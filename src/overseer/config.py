"""The configuration file (`config/overseer.yaml`), validated, with every problem at file:line.

Everything has a safe default, so no file at all is a valid configuration: `overseer run --once
--target PATH` works on any repository. Relative paths in the file are relative to the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    field_validator,
    model_validator,
)

from overseer.base.durations import Duration
from overseer.base.yamlfile import LineMap, read_model
from overseer.vocabulary import EVENT_TYPES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Schedule(_Strict):
    every: Duration | None = 1800.0
    cron: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Schedule:
        if self.cron is not None:
            from apscheduler.triggers.cron import CronTrigger  # only when a cron is configured

            try:
                CronTrigger.from_crontab(self.cron)
            except ValueError as exc:
                raise ValueError(f"cron {self.cron!r}: {exc}") from None
            self.every = None
        return self

    def describe(self) -> str:
        """For people: "every 30m", "cron */30 9-17 * * mon-fri"."""
        if self.cron:
            return f"cron {self.cron}"
        seconds = self.every or 0
        if seconds >= 3600 and seconds % 3600 == 0:
            return f"every {seconds / 3600:g}h"
        if seconds >= 60 and seconds % 60 == 0:
            return f"every {seconds / 60:g}m"
        return f"every {seconds:g}s"


def _default_approver_groups() -> list[str | int]:
    return ["overseer-approvers"]


class Approvers(_Strict):
    """Who may approve, reject, roll back, pause and resume (by user name or uid, or group).

    With `include_owner` the user the daemon runs as, and root, may too: they own its files
    anyway, and a personal daemon's owner should not have to list themselves.
    """

    users: list[str | int] = Field(default_factory=list)
    groups: list[str | int] = Field(default_factory=_default_approver_groups)
    include_owner: bool = True
    expire_after: Duration = 86400.0  # an approval not given by then is recorded as expired


class DaemonSettings(_Strict):
    socket: Path | None = Field(default=None, description="default: see overseer.locations")
    socket_group: str | int | None = Field(
        default=None, description="group that may connect (socket 0660 in a 0750 directory)"
    )
    shutdown_grace: Duration = 60.0  # a running phase may finish within this on SIGTERM
    misfire_grace: Duration = 300.0  # a cycle that missed its time still runs within this
    event_queue: Annotated[int, Field(ge=10)] = 1000  # per subscriber, then drop-and-tell
    # How often undecided approvals expire and what a cycle that could not write the history
    # (a locked database, a full disk) left in progress is closed, once it can be written.
    housekeeping_every: Annotated[Duration, Field(gt=0)] = 60.0
    # Connections from anyone who may open the socket, and beyond them a few that only
    # approvers may take: however many others are connected, `overseer pause` gets in. The
    # daemon raises its open-file limit to the hard one at start; these stay far below it, so
    # a cycle's git and test commands always have descriptors.
    max_connections: Annotated[int, Field(ge=1, le=65536)] = 128
    reserved_for_approvers: Annotated[int, Field(ge=0, le=1024)] = 4
    # A connection that has not said hello by then is closed: idle connections cannot hold
    # the places forever.
    hello_timeout: Annotated[Duration, Field(gt=0)] = 10.0
    # What the daemon holds for one client that does not read (its answers, its events): at
    # most this many KiB of answers (a client beyond it is disconnected) and half as much of
    # events (beyond it they are dropped and counted, as with event_queue).
    max_client_buffer_kb: Annotated[int, Field(ge=16, le=1024 * 1024)] = 4096
    # Test commands running at once in this process, whatever runs them (a cycle's baseline
    # and candidate at once, the cycles of several targets, reruns, the post-promotion watch):
    # never more. Default: the machine's cores.
    max_test_runs: Annotated[int, Field(ge=1, le=256)] | None = Field(
        default=None, description="default: the number of cores"
    )
    # Cycles running at once, each on its own target (never two on one): a target's cycle
    # waits for a free one, the target whose last cycle finished longest ago first. Their
    # test runs still share max_test_runs. Default: half the cores, at least 1.
    max_parallel_cycles: Annotated[int, Field(ge=1, le=256)] | None = Field(
        default=None, description="default: half the number of cores, at least 1"
    )

    @property
    def parallel_cycles(self) -> int:
        """max_parallel_cycles, or its default on this machine."""
        return self.max_parallel_cycles or max(1, (os.cpu_count() or 1) // 2)


class RunDefaults(_Strict):
    """The run parameters when no flag says otherwise: the safe ones."""

    dry_run: bool = True
    require_approval: bool = True
    max_changes_per_run: Annotated[int, Field(ge=0)] = 1
    area: Literal["performance", "quality", "features", "auto"] = "auto"


class GitIdentity(_Strict):
    name: str = "overseer"
    email: str = "overseer@localhost"


DEFAULT_RUFF_SELECT = ["E", "F", "W", "UP", "B", "SIM", "PERF", "I"]


class CISettings(_Strict):
    """An external CI that judges pushed candidate branches instead of a local test run."""

    status_command: str = Field(
        description="prints pass, fail or pending (or JSON {status, junit}); gets $OVERSEER_BRANCH, "
        "$OVERSEER_COMMIT and $OVERSEER_REMOTE"
    )
    timeout: Duration = 1800.0  # no verdict by then: the attempt fails
    first_poll: Duration = 10.0  # then the wait doubles, up to max_poll
    max_poll: Duration = 120.0


class NewTestsSettings(_Strict):
    """New tests that prove themselves (analyze/coverage.py, evaluate/proving.py)."""

    enabled: bool = Field(
        default=False,
        description="run the tests under coverage.py at ANALYZE and let a model write new "
        "tests for the modules with uncovered lines (finding kind uncovered_code)",
    )
    reliability_runs: Annotated[int, Field(ge=1, le=50)] = (
        5  # a new test passes this often in a row
    )
    max_findings: Annotated[int, Field(ge=1)] = 20  # modules, the least covered first


class TargetConfig(_Strict):
    name: str | None = None
    path: Path
    # When this target's cycles run, instead of the top-level schedule (same shape).
    schedule: Schedule | None = None
    branch: str | None = Field(default=None, description="default: the branch checked out there")
    push: str | Literal[False] = False
    test_command: str | None = Field(default=None, description="default: python -m pytest")
    test_timeout: Duration = 900.0
    benchmark_command: str | None = None
    benchmark_timeout: Duration = 600.0
    benchmark_runs: Annotated[int, Field(ge=2, le=50)] = 5  # on each side, interleaved
    benchmark_metric: str | None = Field(default=None, description="default: the first one printed")
    benchmark_min_effect: Annotated[float, Field(ge=0)] = 2.0  # percent; smaller is noise
    max_slowdown_percent: Annotated[float, Field(ge=0)] = 5.0  # slower than this fails a change
    watch_after_promotion: bool = True  # run the tests (and benchmark) again once promoted
    ci: CISettings | None = None
    memory_limit_mb: Annotated[int, Field(ge=64)] | None = 4096
    junit_xml: str | None = Field(
        default=None, description="where a non-pytest test command writes its JUnit XML report"
    )
    ruff_select: list[str] = Field(default_factory=lambda: list(DEFAULT_RUFF_SELECT))
    env: dict[str, str] = Field(
        default_factory=dict, description="extra environment for the target's test and benchmark"
    )
    pass_env: list[str] = Field(
        default_factory=list,
        description="secret variables (policy secrets.env) the target's commands may still see; "
        "their values stay redacted in everything overseer writes",
    )
    slow_test_seconds: Annotated[float, Field(gt=0)] = 1.0
    flaky_reruns: Annotated[int, Field(ge=0, le=10)] = 2  # a failing test is run again this often
    # A test run with fewer tests than this cannot show that a change is harmless: nothing is
    # promoted on it. 0 accepts a repository without tests (lint fixes judged by nothing).
    min_tests: Annotated[int, Field(ge=0)] = 1
    new_tests: NewTestsSettings = Field(default_factory=NewTestsSettings)
    # A lint finding's baseline and candidate test runs at once, each in its own worktree and
    # process group: `auto` decides per cycle (two free test slots, a second core idle, the
    # memory for both runs; the last tests on the target green); the decision and why are
    # recorded with the cycle and the attempt (`overseer show ID`).
    evaluate_concurrently: bool | Literal["auto"] = "auto"
    # Compiled Python files kept in the state directory by the content of their source, so a
    # new worktree's test run does not compile every module again (core/plumbing/bytecode.py);
    # false: every run compiles what it imports and writes nothing, as Python without a cache.
    bytecode_cache: bool = True
    # The test and benchmark commands may write only in their worktree, their own temp
    # directory and `writable_paths` (Linux's Landlock; core/plumbing/confine.py): a
    # candidate's code cannot touch the repository's branches, the user's checkout or
    # overseer's state. `auto`: where the kernel offers Landlock, else unconfined (said in
    # the log and `overseer show`); true: never unconfined (a run that cannot be confined
    # fails and says why); false: unconfined.
    confine_tests: bool | Literal["auto"] = "auto"
    writable_paths: list[Path] = Field(
        default_factory=list,
        description="more directories a confined test run may write in (a cache in $HOME)",
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str | None) -> str | None:
        if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise ValueError("use letters, digits, '.', '_' and '-' only")
        return name

    @model_validator(mode="after")
    def _ci_needs_a_remote(self) -> TargetConfig:
        if self.ci is not None and not self.push:
            raise ValueError("ci needs push: the remote the candidate branches are pushed to")
        return self

    @field_validator("ruff_select")
    @classmethod
    def _rule_codes(cls, codes: list[str]) -> list[str]:
        bad = [c for c in codes if not re.fullmatch(r"[A-Z]{1,5}[0-9]{0,4}", c)]
        if bad:
            raise ValueError(f"not ruff rule codes or prefixes: {', '.join(bad)}")
        if not codes:
            raise ValueError("select at least one rule")
        return codes


class _Sampling(_Strict):
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.2
    max_new_tokens: Annotated[int, Field(ge=1, le=32768)] = 512
    seed: int = 42
    candidates: Annotated[int, Field(ge=1, le=8)] = 1  # N-best: each goes through SAFETY
    examples: Annotated[int, Field(ge=0, le=10)] = 3  # past kept changes of the same kind
    context_length: Annotated[int, Field(ge=256)] = 2048
    # Which features (`--area features`) the model may write: `tested` — those a test proves
    # (an xfail test, a NotImplementedError a test reaches); `all` — TODO/FIXME comments too,
    # which nothing checks; `none`.
    features: Literal["none", "tested", "all"] = "tested"
    # A candidate that fails — a reply that cannot be read, an edit that cannot be applied,
    # tests that fail with it — is shown to the model with the failure, and the model is asked
    # again, up to this many times within the same attempt (core/generate/repair.py); 0: never.
    repair_rounds: Annotated[int, Field(ge=0, le=5)] = 2
    # The most tokens one attempt may spend, every round together (each request's prompt and
    # reply, the reply counted at max_new_tokens until it is known); a round that could go
    # beyond it is not sent. None: no limit but the rounds'.
    token_budget: Annotated[int, Field(ge=1)] | None = None


class _LocalModel(_Sampling):
    model_path: Path
    threads: Annotated[int, Field(ge=1)] = 1
    time_limit: Duration = 300.0  # loading and generating, in the child process
    memory_limit_mb: Annotated[int, Field(ge=64)] | None = 8192


class CTransformersSettings(_LocalModel):
    backend: Literal["ctransformers"]
    model_type: str = "llama"


class LlamaCppSettings(_LocalModel):
    backend: Literal["llama_cpp"]


class OpenAISettings(_Sampling):
    backend: Literal["openai"]
    base_url: str = Field(
        description="e.g. http://127.0.0.1:8080/v1 (llama.cpp server, Ollama, vLLM)"
    )
    model: str
    api_key_env: str | None = Field(default="OPENAI_API_KEY", description="environment variable")
    timeout: Duration = 120.0
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    context_length: Annotated[int, Field(ge=256)] = 8192

    @field_validator("base_url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("base_url must start with http:// or https://")
        return url.rstrip("/")


LLMSettings = Annotated[
    CTransformersSettings | OpenAISettings | LlamaCppSettings, Field(discriminator="backend")
]


class LLMGenerator(_Strict):
    llm: LLMSettings


#: The events worth telling someone who is not watching (docs/notifications.md).
NOTIFY_EVENTS = [
    "ApprovalRequested",
    "ChangePromoted",
    "ChangeRolledBack",
    "RegressionFound",
    "CircuitBreakerTripped",
    "TargetUnhealthy",
    "DaemonStopping",
]
# Shorter names people write for an event (the issue that asked for notifications spelled it so).
NOTIFY_ALIASES = {"BreakerTripped": "CircuitBreakerTripped"}


class NotifyReceiver(_Strict):
    """One receiver of notifications, by its Apprise URL (json://, ntfy://, slack://, matrix://,
    mailto:// …), and the events it is told about."""

    url: str = Field(description="an Apprise URL; it may hold credentials: status shows it masked")
    events: list[str] = Field(default_factory=lambda: list(NOTIFY_EVENTS))
    # One send may take this long (connecting, and reading the answer), then it counts as failed.
    timeout: Annotated[Duration, Field(gt=0)] = 10.0
    # The same event about the same thing (an attempt, a target) within this window: sent once.
    dedupe_window: Duration = 600.0
    # At most this many messages an hour to this receiver; beyond it they are dropped and counted.
    max_per_hour: Annotated[int, Field(ge=1)] = 60
    # A failed send is tried again after retry_after, then twice as long each time, up to retries.
    retry_after: Annotated[Duration, Field(gt=0)] = 5.0
    retries: Annotated[int, Field(ge=0, le=20)] = 5

    @field_validator("url")
    @classmethod
    def _apprise_url(cls, url: str) -> str:
        if "://" not in url:
            raise ValueError("an Apprise URL, such as json://host/path or ntfy://topic")
        import apprise  # only when notifications are configured

        if apprise.Apprise.instantiate(url) is None:
            scheme = url.split("://", 1)[0]
            raise ValueError(f"Apprise does not understand this URL (scheme {scheme}://)")
        return url

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str]) -> list[str]:
        names = [NOTIFY_ALIASES.get(e, e) for e in events]
        unknown = [e for e, n in zip(events, names, strict=True) if n not in EVENT_TYPES]
        if unknown:
            raise ValueError(
                f"no such event: {', '.join(unknown)}; the usual ones: {', '.join(NOTIFY_EVENTS)}"
            )
        if not names:
            raise ValueError("name at least one event")
        return list(dict.fromkeys(names))


class MetricsSettings(_Strict):
    """The daemon's opt-in metrics listener (Prometheus exposition format)."""

    listen: str = Field(description="host:port (127.0.0.1:9464), or the path of a Unix socket")

    @field_validator("listen")
    @classmethod
    def _address(cls, listen: str) -> str:
        if listen.startswith(("/", ".")):
            return listen
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("host:port, such as 127.0.0.1:9464, or a Unix socket's path")
        return listen


def _generator_kind(value: Any) -> str:
    return "llm" if isinstance(value, dict | LLMGenerator) else "name"


# `- ruff_fix` or `- llm: {backend: …}`: told apart before validating, so a mistake in one
# is reported once, about that one.
GeneratorConfig = Annotated[
    Annotated[Literal["ruff_fix"], Tag("name")] | Annotated[LLMGenerator, Tag("llm")],
    Discriminator(_generator_kind),
]


def _default_generators() -> list[GeneratorConfig]:
    return ["ruff_fix"]


class OverseerConfig(_Strict):
    state_dir: Path | None = None
    # A write to the history database waits this long for another process's lock on it
    # (someone's `sqlite3` shell, a backup) before the operation fails, saying so.
    database_lock_timeout: Duration = 30.0
    schedule: Schedule = Schedule()
    approvers: Approvers = Approvers()
    daemon: DaemonSettings = DaemonSettings()
    policy: Path | None = None
    defaults: RunDefaults = RunDefaults()
    git: GitIdentity = GitIdentity()
    targets: list[TargetConfig] = Field(default_factory=list)
    generators: list[GeneratorConfig] = Field(default_factory=_default_generators)
    notify: list[NotifyReceiver] = Field(default_factory=list)
    metrics: MetricsSettings | None = None
    # Where the configuration came from, so later checks can point at file:line.
    _source: Path | None = PrivateAttr(default=None)
    _lines: LineMap | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        return self._source

    def where(self, *key: str | int) -> tuple[str, int]:
        """The file and line of a key path, for problems found after loading."""
        if self._source is None or self._lines is None:
            return "<defaults>", 0
        return str(self._source), self._lines.line_of(key)[0]

    @field_validator("generators")
    @classmethod
    def _some_generator(cls, generators: list[GeneratorConfig]) -> list[GeneratorConfig]:
        if not generators:
            raise ValueError("list at least one generator (ruff_fix, or llm: {...})")
        return generators

    @field_validator("targets")
    @classmethod
    def _unique_targets(cls, targets: list[TargetConfig]) -> list[TargetConfig]:
        names = [t.name or t.path.name for t in targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(
                f"target names must be unique (set name:); repeated: {', '.join(dupes)}"
            )
        return targets


def _resolve_relative(config: OverseerConfig, base: Path) -> OverseerConfig:
    def rel(p: Path | None) -> Path | None:
        if p is None:
            return None
        p = p.expanduser()
        return p if p.is_absolute() else (base / p).resolve()

    config.state_dir = rel(config.state_dir)
    config.policy = rel(config.policy)
    config.daemon.socket = rel(config.daemon.socket)
    if config.metrics is not None and config.metrics.listen.startswith("."):
        config.metrics.listen = str(rel(Path(config.metrics.listen)))
    for generator in config.generators:
        if isinstance(generator, LLMGenerator) and hasattr(generator.llm, "model_path"):
            generator.llm.model_path = rel(generator.llm.model_path)  # type: ignore[union-attr,assignment]
    for target in config.targets:
        target.path = rel(target.path)  # type: ignore[assignment]
        target.writable_paths = [rel(w) for w in target.writable_paths]  # type: ignore[misc]
    return config


def load_config(path: Path | None) -> OverseerConfig:
    """The configuration at `path`, or the embedded defaults when there is none."""
    if path is None:
        return OverseerConfig()
    config, lines = read_model(OverseerConfig, path)
    config._source = path.resolve()
    config._lines = lines
    return _resolve_relative(config, path.resolve().parent)
