"""Risk policy: a YAML file compiled once into a callable that judges each candidate change.

The policy decides; the generator only proposes. Risk can be raised by every source (the
generator's own statement, the size of the change, the rules) and lowered by none, so a model
cannot talk a change into a lower risk than it admitted itself. Protected paths are denied at
every autonomy level, and the built-in protected paths cannot be removed by a policy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from overseer.base.durations import Duration
from overseer.base.globs import first_match
from overseer.base.yamlfile import load_model
from overseer.core.analyze.findings import TEST_PATHS
from overseer.core.generate.candidate import Risk as Risk  # stated there, judged here
from overseer.core.plumbing.secrets import DEFAULT_SECRET_ENV


def max_risk(*risks: Risk) -> Risk:
    return max(risks, key=lambda r: r.rank)


class Decision(StrEnum):
    ALLOW = "allow"
    NEEDS_APPROVAL = "needs_approval"
    DENY = "deny"

    @property
    def rank(self) -> int:
        return {"allow": 0, "needs_approval": 1, "deny": 2}[self.value]


class Autonomy(StrEnum):
    OBSERVE = "observe"
    SUPERVISED = "supervised"
    LIMITED = "limited"
    FULL = "full"


AREAS = ("performance", "quality", "features")
Area = Literal["performance", "quality", "features"]
ChangeType = Literal["optimization", "bugfix", "feature", "quality", "test"]

# What no policy can unprotect: history, CI, dependency pins, overseer's own config and policy.
BUILTIN_PROTECTED = (
    ".git",
    ".git/**",
    ".github/**",
    ".gitlab-ci.yml",
    ".gitlab/**",
    ".circleci/**",
    ".ci/**",
    ".travis.yml",
    "azure-pipelines.yml",
    "Jenkinsfile",
    "*.lock",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "pnpm-lock.yaml",
    "go.sum",
    ".overseer/**",
)

# When the target is overseer itself, the code that keeps it safe is off limits to it: the
# policy, the guards (paths, oracle, secrets, edit matching), the rate limits, the evaluation
# and the gate that acts on it, git's side (deploy, promote, recovery), and the tests that
# prove the guards — a change that weakens a guard's test weakens the guard.
SELF_PROTECTED = (
    "config/**",
    "policies/**",
    "systemd/**",
    "src/overseer/core/safety/**",  # the policy, the guards, the rate limits
    "src/overseer/core/evaluate/**",  # the evaluation and its gate
    "src/overseer/core/watch.py",  # the post-promotion watch
    "src/overseer/core/deploy/**",  # git's side: commits, promotion, reverts
    "src/overseer/core/generate/candidate.py",  # edit matching
    "src/overseer/core/plumbing/secrets.py",
    "src/overseer/core/plumbing/sandbox.py",
    "src/overseer/core/plumbing/lock.py",
    "src/overseer/core/plumbing/testrun.py",  # how the tests run and what they said
    "src/overseer/core/plumbing/pytest_plugin/**",
    "src/overseer/base/globs.py",
    "src/overseer/core/learn/predictor.py",
    "src/overseer/core/cycle.py",
    "src/overseer/core/lifecycle.py",  # the one writer of a status; promotion and revert
    "src/overseer/core/actions.py",  # who may decide, and expiry
    "src/overseer/core/recovery.py",
    "src/overseer/daemon/auth.py",
    "tests/core/safety/**",  # the guards' tests: policy, oracle, limits, protected paths, corpus
    "tests/core/test_recovery.py",
    "tests/faults/**",
    "tests/support/**",  # what those tests stand on: repositories, the corpus, the invariants
    "tests/**/conftest.py",  # fixtures, and hooks that could deselect any test
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Conditions(_Strict):
    """Every condition given must hold for the rule to apply."""

    paths: list[str] | None = None
    change_type: list[ChangeType] | None = None
    area: list[Area] | None = None
    generator: list[str] | None = None
    finding: list[str] | None = Field(
        default=None,
        description="finding kinds (ruff rule codes, failing_test, slow_test, xfail_test, "
        "not_implemented, todo); globs",
    )
    min_lines: int | None = Field(default=None, ge=0)
    min_files: int | None = Field(default=None, ge=0)
    success_below: float | None = Field(default=None, ge=0, le=1)


class Rule(_Strict):
    name: str
    when: Conditions = Conditions()
    risk: Risk | None = None
    verdict: Decision | None = None
    reason: str = ""

    @model_validator(mode="after")
    def _does_something(self) -> Rule:
        if self.risk is None and self.verdict is None:
            raise ValueError("a rule needs `risk:` or `verdict:` (as written it changes nothing)")
        if self.risk is None and self.verdict is Decision.ALLOW:
            raise ValueError(
                "`verdict: allow` cannot loosen anything (a verdict only gets stricter: allow < "
                "needs_approval < deny), so as written this rule changes nothing"
            )
        return self


class SizeLimits(_Strict):
    max_files: Annotated[int, Field(ge=1)] = 3
    max_lines: Annotated[int, Field(ge=1)] = 400
    medium_lines: Annotated[int, Field(ge=0)] = 20
    high_lines: Annotated[int, Field(ge=0)] = 100

    @model_validator(mode="after")
    def _ordered(self) -> SizeLimits:
        if not self.medium_lines <= self.high_lines <= self.max_lines:
            raise ValueError(
                f"expected medium_lines ≤ high_lines ≤ max_lines, got {self.medium_lines}, "
                f"{self.high_lines}, {self.max_lines}"
            )
        return self


class RateLimits(_Strict):
    per_hour: Annotated[int, Field(ge=0)] = 3
    per_day: Annotated[int, Field(ge=0)] = 10
    pending_approvals: Annotated[int, Field(ge=0)] = 5
    cooldown_after_rollback: Duration = 3600.0  # no new real change on the target until then
    circuit_breaker: Annotated[int, Field(ge=0)] = 3  # consecutive failures that pause; 0: off


class SuccessRisk(_Strict):
    """Risk from the predicted success: a kind of change that keeps failing is riskier."""

    medium_below: Annotated[float, Field(ge=0, le=1)] = 0.35
    high_below: Annotated[float, Field(ge=0, le=1)] = 0.2
    approval_below: Annotated[float, Field(ge=0, le=1)] = 0.25  # a human decides below this
    drop_below: Annotated[float, Field(ge=0, le=1)] = 0.0  # denied below this (0: never)

    @model_validator(mode="after")
    def _ordered(self) -> SuccessRisk:
        if self.high_below > self.medium_below:
            raise ValueError(
                f"high_below ({self.high_below:g}) is above medium_below "
                f"({self.medium_below:g}): high risk must be the lower predicted success"
            )
        return self


DEFAULT_SECRET_FILES = [
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "id_rsa*",
    "id_ed25519*",
    ".netrc",
    ".pypirc",
    "*.p12",
    "credentials*.json",
    "secrets.*",
]


class Secrets(_Strict):
    """Secrets never enter prompts, logs or the history: matching environment variables have
    their values redacted everywhere overseer writes, and matching files are neither read into
    prompts nor changed."""

    env: list[str] = Field(default_factory=lambda: list(DEFAULT_SECRET_ENV))
    files: list[str] = Field(default_factory=lambda: list(DEFAULT_SECRET_FILES))


def _default_rules() -> list[Rule]:
    return [
        Rule(
            name="test-code",
            when=Conditions(paths=["tests/**", "test_*.py", "*_test.py", "conftest.py"]),
            risk=Risk.MEDIUM,
            reason="edits test code, which decides whether changes pass",
        ),
        Rule(
            name="features",
            when=Conditions(change_type=["feature"]),
            risk=Risk.MEDIUM,
            reason="adds behaviour: its test shows it works, not that it is wanted",
        ),
    ]


def _quality_only() -> list[Area]:
    return ["quality"]


class Policy(_Strict):
    version: int = 1
    autonomy: Autonomy = Autonomy.SUPERVISED
    max_changes_per_run: Annotated[int, Field(ge=0)] = 1
    areas: list[Area] = Field(default_factory=_quality_only)
    full_max_auto_risk: Risk = Risk.MEDIUM
    # A change that weakens the tests (see core/safety/oracle.py) waits for a human, or is denied.
    oracle_changes: Decision = Decision.NEEDS_APPROVAL
    size: SizeLimits = SizeLimits()
    limits: RateLimits = RateLimits()
    success: SuccessRisk = SuccessRisk()
    secrets: Secrets = Secrets()
    protected_paths: list[str] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=_default_rules)

    @field_validator("oracle_changes")
    @classmethod
    def _oracle_needs_a_human(cls, value: Decision) -> Decision:
        if value is Decision.ALLOW:
            raise ValueError(
                "a change that weakens the tests never promotes itself: `allow` is not "
                "accepted here (needs_approval or deny)"
            )
        return value

    @classmethod
    def file_problems(cls, data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
        """Problems found in the file's data whatever else is wrong with it, each at its place
        (yamlfile.validate asks): a rule name used twice, at the second one."""
        found: list[tuple[tuple[Any, ...], str]] = []
        rules = data.get("rules")
        if not isinstance(rules, list):
            return found
        first: dict[str, int] = {}
        for i, rule in enumerate(rules):
            name = rule.get("name") if isinstance(rule, dict) else None
            if not isinstance(name, str):
                continue
            if name in first:
                found.append(
                    (
                        ("rules", i, "name"),
                        f"rule names must be unique: {name!r} is also rules[{first[name]}]",
                    )
                )
            else:
                first[name] = i
        return found


@dataclass(frozen=True)
class CandidateFacts:
    """What the policy may look at: facts measured from the change, plus what the generator said."""

    paths: tuple[str, ...]
    change_type: str
    area: str
    generator: str
    finding: str
    lines_changed: int
    stated_risk: Risk
    predicted_success: float | None = None
    oracle: tuple[str, ...] = ()  # how the change weakens the tests (see core/safety/oracle.py)
    xfail_removed: tuple[str, ...] = ()  # test file::test whose xfail mark the change removes
    # A feature change's test edits beyond the one it may make (oracle.feature_test_edits).
    test_edits: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "paths": list(self.paths),
            "change_type": self.change_type,
            "area": self.area,
            "generator": self.generator,
            "finding": self.finding,
            "lines_changed": self.lines_changed,
            "stated_risk": self.stated_risk.value,
            "predicted_success": self.predicted_success,
            "oracle": list(self.oracle),
            "xfail_removed": list(self.xfail_removed),
            "test_edits": list(self.test_edits),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CandidateFacts:
        """From to_dict's output, as stored (JSON) with an attempt."""
        return cls(
            paths=tuple(data["paths"]),
            change_type=str(data["change_type"]),
            area=str(data["area"]),
            generator=str(data["generator"]),
            finding=str(data["finding"]),
            lines_changed=int(data["lines_changed"]),
            stated_risk=Risk(str(data["stated_risk"])),
            predicted_success=data.get("predicted_success"),
            oracle=tuple(data.get("oracle") or ()),
            xfail_removed=tuple(data.get("xfail_removed") or ()),
            test_edits=tuple(data.get("test_edits") or ()),
        )

    @property
    def files_changed(self) -> int:
        return len(self.paths)


@dataclass
class Verdict:
    decision: Decision
    risk: Risk
    reasons: list[str] = field(default_factory=list)  # everything that shaped the verdict
    rules: list[str] = field(default_factory=list)  # names of the rules that matched
    force_dry_run: bool = False
    # The reasons that made it stricter: why it is denied, why it needs a human.
    because: dict[str, list[str]] = field(default_factory=dict)

    def why(self, decision: Decision | None = None) -> str:
        return "; ".join(self.because.get((decision or self.decision).value, []))

    def deny(self, reason: str) -> None:
        """Validation found the change malformed: denied, whatever the policy said."""
        self.decision = Decision.DENY
        self.reasons.insert(0, reason)
        self.because.setdefault(Decision.DENY.value, []).append(reason)

    def to_dict(self) -> dict[str, object]:
        return {
            "decision": self.decision.value,
            "risk": self.risk.value,
            "reasons": self.reasons,
            "rules": self.rules,
            "force_dry_run": self.force_dry_run,
            "because": self.because,
        }


class CompiledRule:
    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.when = rule.when

    def matches(self, facts: CandidateFacts) -> bool:
        w = self.when
        if w.paths is not None and not any(first_match(w.paths, p) for p in facts.paths):
            return False
        if w.change_type is not None and facts.change_type not in w.change_type:
            return False
        if w.area is not None and facts.area not in w.area:
            return False
        if w.generator is not None and facts.generator not in w.generator:
            return False
        if w.finding is not None and not first_match(w.finding, facts.finding):
            return False
        if w.min_lines is not None and facts.lines_changed < w.min_lines:
            return False
        if w.min_files is not None and facts.files_changed < w.min_files:
            return False
        return w.success_below is None or (
            facts.predicted_success is not None and facts.predicted_success < w.success_below
        )

    def __repr__(self) -> str:
        return (
            f"CompiledRule({self.rule.name!r}, risk={self.rule.risk}, verdict={self.rule.verdict})"
        )


class CompiledPolicy:
    """The policy, ready to judge candidates: `policy.judge(facts, require_approval=True)`."""

    def __init__(
        self,
        policy: Policy,
        *,
        source: str = "<embedded default>",
        digest: str | None = None,
        extra_protected: tuple[str, ...] = (),
    ) -> None:
        self.policy = policy
        self.source = source
        canonical = policy.model_dump_json()
        self.digest = digest or hashlib.sha256(canonical.encode()).hexdigest()[:10]
        self.rules = [CompiledRule(r) for r in policy.rules]
        self.protected = (
            BUILTIN_PROTECTED
            + tuple(policy.protected_paths)
            + tuple(policy.secrets.files)
            + extra_protected
        )

    @property
    def version(self) -> str:
        return f"v{self.policy.version}:{self.digest}"

    @property
    def autonomy(self) -> Autonomy:
        return self.policy.autonomy

    def with_protected(self, extra: tuple[str, ...]) -> CompiledPolicy:
        return CompiledPolicy(
            self.policy, source=self.source, digest=self.digest, extra_protected=extra
        )

    def protected_match(self, path: str) -> str | None:
        return first_match(self.protected, path)

    def judge(self, facts: CandidateFacts, *, require_approval: bool) -> Verdict:
        p = self.policy
        risk = facts.stated_risk
        decision = Decision.ALLOW
        reasons = [f"{facts.generator} rates it {facts.stated_risk.value}"]
        matched: list[str] = []
        because: dict[str, list[str]] = {}

        def raise_to(new_risk: Risk | None, new_decision: Decision | None, why: str) -> None:
            nonlocal risk, decision
            if new_risk is not None:
                risk = max_risk(risk, new_risk)
            if new_decision is not None:
                because.setdefault(new_decision.value, []).append(why)
                if new_decision.rank > decision.rank:
                    decision = new_decision
            reasons.append(why)

        for path in facts.paths:
            pattern = self.protected_match(path)
            if pattern:
                raise_to(Risk.HIGH, Decision.DENY, f"touches protected path {path} ({pattern})")

        size = p.size
        if facts.files_changed > size.max_files:
            raise_to(
                Risk.HIGH,
                Decision.DENY,
                f"changes {facts.files_changed} files, more than size.max_files={size.max_files}",
            )
        if facts.lines_changed > size.max_lines:
            raise_to(
                Risk.HIGH,
                Decision.DENY,
                f"changes {facts.lines_changed} lines, more than size.max_lines={size.max_lines}",
            )
        elif facts.lines_changed > size.high_lines:
            raise_to(Risk.HIGH, None, f"changes {facts.lines_changed} lines (> {size.high_lines})")
        elif facts.lines_changed > size.medium_lines:
            raise_to(
                Risk.MEDIUM, None, f"changes {facts.lines_changed} lines (> {size.medium_lines})"
            )

        # Whatever the autonomy level and full_max_auto_risk: the tests decide what is kept,
        # so a change to what they check is for a human to judge (oracle_changes never allows).
        for reason in facts.oracle:
            raise_to(Risk.HIGH, p.oracle_changes, f"oracle: {reason}")
        # A feature is proven by its own test, so it may not touch any other, nor that one
        # beyond removing its xfail mark: no human can make such a change what it claims.
        for reason in facts.test_edits:
            raise_to(Risk.HIGH, Decision.DENY, f"oracle: a {facts.change_type} change {reason}")
        if facts.change_type == "bugfix":
            tests = [path for path in facts.paths if first_match(TEST_PATHS, path)]
            if tests:  # the test that decides whether the fix works, changed with it
                raise_to(
                    Risk.HIGH, p.oracle_changes, f"claims a fix but edits tests: {', '.join(tests)}"
                )

        success = p.success
        if facts.predicted_success is not None:
            if facts.predicted_success < success.drop_below:
                raise_to(
                    Risk.HIGH,
                    Decision.DENY,
                    f"predicted success {facts.predicted_success:.2f} < drop_below {success.drop_below}",
                )
            elif facts.predicted_success < success.approval_below:
                raise_to(
                    None,
                    Decision.NEEDS_APPROVAL,
                    f"predicted success {facts.predicted_success:.2f} < approval_below {success.approval_below}",
                )
            if facts.predicted_success < success.high_below:
                raise_to(
                    Risk.HIGH,
                    None,
                    f"predicted success {facts.predicted_success:.2f} < {success.high_below}",
                )
            elif facts.predicted_success < success.medium_below:
                raise_to(
                    Risk.MEDIUM,
                    None,
                    f"predicted success {facts.predicted_success:.2f} < {success.medium_below}",
                )

        for rule in self.rules:
            if rule.matches(facts):
                matched.append(rule.rule.name)
                why = rule.rule.reason or "matched"
                raise_to(rule.rule.risk, rule.rule.verdict, f"rule {rule.rule.name}: {why}")

        force_dry_run = False
        autonomy = p.autonomy
        if autonomy is Autonomy.OBSERVE:
            force_dry_run = True
            raise_to(None, Decision.NEEDS_APPROVAL, "autonomy observe: dry-run only")
        elif autonomy is Autonomy.SUPERVISED:
            raise_to(
                None, Decision.NEEDS_APPROVAL, "autonomy supervised: every promotion is approved"
            )
        elif autonomy is Autonomy.LIMITED:
            if risk is not Risk.LOW:
                raise_to(
                    None, Decision.NEEDS_APPROVAL, f"autonomy limited: risk {risk.value} is not low"
                )
            elif facts.area not in p.areas:
                raise_to(
                    None,
                    Decision.NEEDS_APPROVAL,
                    f"autonomy limited: area {facts.area} is not in areas {p.areas}",
                )
            else:
                reasons.append(
                    f"autonomy limited: low risk in area {facts.area} may promote itself"
                )
        elif autonomy is Autonomy.FULL and risk.rank > p.full_max_auto_risk.rank:
            raise_to(
                None,
                Decision.NEEDS_APPROVAL,
                f"autonomy full: risk {risk.value} above {p.full_max_auto_risk.value}",
            )
        if require_approval:
            raise_to(None, Decision.NEEDS_APPROVAL, "this run requires approval")
        return Verdict(decision, risk, reasons, matched, force_dry_run, because)

    def __repr__(self) -> str:
        return (
            f"CompiledPolicy({self.source!r}, {self.version}, autonomy={self.autonomy.value}, "
            f"rules={len(self.rules)}, protected={len(self.protected)})"
        )


def load_policy(path: Path | None) -> CompiledPolicy:
    """The policy at `path`, or the embedded default; raises ProblemsError with every problem."""
    if path is None:
        return CompiledPolicy(Policy())
    policy = load_model(Policy, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    return CompiledPolicy(policy, source=str(path), digest=digest)


def rejudge(policy: CompiledPolicy, facts: dict[str, object]) -> Verdict:
    """The verdict `policy` gives to facts recorded with an attempt."""
    return policy.judge(
        CandidateFacts.from_dict(facts), require_approval=bool(facts.get("require_approval", True))
    )


def verdict_changes(
    old: CompiledPolicy, new: CompiledPolicy, attempts: Sequence[Mapping[str, object]]
) -> list[dict[str, object]]:
    """Which of these attempts the new policy would have treated differently, and how."""
    changes = []
    for row in attempts:
        facts = row.get("policy_facts")
        if not isinstance(facts, dict):
            continue
        before, after = rejudge(old, facts), rejudge(new, facts)
        if (before.decision, before.risk) != (after.decision, after.risk):
            changes.append(
                {
                    "improvement_id": row["improvement_id"],
                    "status": row.get("status"),
                    "before": {"decision": before.decision.value, "risk": before.risk.value},
                    "after": {"decision": after.decision.value, "risk": after.risk.value},
                    "why": [r for r in after.reasons if r not in before.reasons],
                }
            )
    return changes
