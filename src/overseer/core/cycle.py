"""One improvement cycle: ANALYZE once, then per candidate GENERATE → SAFETY → DEPLOY →
EVALUATE → LEARN → RECORD, each phase reported on the event bus and written to the history as
it happens.

`run_cycle` is the one code path for `overseer run --once`, the demo and the daemon's schedule.
It holds the target's lock, first closes whatever a killed process left behind, retries
promotions that were waiting for a clean working tree, and then runs the cycle.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overseer.core.actions import expire_approvals
from overseer.core.analyze import Analysis, AnalysisFailed, analyze, features, tests_key
from overseer.core.analyze.findings import Finding
from overseer.core.context import Context, RunSettings
from overseer.core.deploy.commit import branch_name, commit_message, deploy
from overseer.core.evaluate import proving, speedup
from overseer.core.evaluate.ci import ci_evaluation
from overseer.core.evaluate.compare import Evaluation, evaluate_tree
from overseer.core.evaluate.concurrent import decide, evaluate_with_baseline
from overseer.core.evaluate.measure import commit_tree, judge_performance, measure_performance
from overseer.core.generate.candidate import Candidate, GenerationFailed, GeneratorFault
from overseer.core.generate.generators import Generator
from overseer.core.generate.repair import (
    AskAgain,
    RepairRequest,
    Rounds,
    failing_tests,
    malformed,
    reply_of,
    until_settled,
    unusable,
)
from overseer.core.learn.predictor import Prediction, Predictor
from overseer.core.lifecycle import finish_attempt, move, new_id, remove_attempt_tree
from overseer.core.plumbing.bus import PhaseReport
from overseer.core.plumbing.faults import fault_point
from overseer.core.plumbing.repo import RepoError
from overseer.core.plumbing.stop import CycleStopped
from overseer.core.plumbing.testrun import resolve_test_command
from overseer.core.record.history import HistoryUnavailable
from overseer.core.recovery import recover
from overseer.core.safety.oracle import command_files
from overseer.core.safety.policy import CandidateFacts, Decision, Verdict
from overseer.core.safety.ratelimit import RateLimiter
from overseer.core.safety.validate import facts_of, validate
from overseer.core.watch import promote_and_watch, watch_pending
from overseer.vocabulary import (
    SETTLED_AGAINST,
    WAITING,
    ApprovalRequested,
    AttemptFinished,
    AttemptRow,
    AttemptStatus,
    CycleFinished,
    CycleStarted,
    CycleStatus,
    Phase,
    PhaseFinished,
    PhaseStarted,
    RepairRequested,
    TargetNotEvaluable,
    committed,
)

log = logging.getLogger(__name__)

FINAL = (
    AttemptStatus.PROMOTED,
    AttemptStatus.FAILED,
    AttemptStatus.DENIED,
    AttemptStatus.DRY_RUN,
    AttemptStatus.INTERRUPTED,
    AttemptStatus.ERROR,
    AttemptStatus.ROLLED_BACK,
    AttemptStatus.REGRESSED,
)
# What a round leaves on its attempt's row once deployed and evaluated: cleared before a repair
# round, so nothing of the failed round is taken for the next one's.
ROUND_RESULTS = (
    "git_branch",
    "git_commit_hash",
    "tests_passed",
    "tests_failed",
    "tests_skipped",
    "evaluation",
    "performance_delta",
)


@dataclass
class CycleResult:
    cycle_id: str
    status: str  # ok | failed | skipped
    summary: str
    attempts: list[AttemptRow] = field(default_factory=list)
    analysis: Analysis | None = None
    #: a dry run's findings skipped only because an earlier dry run tried them on the same
    #: code: a real run would try them (the ranking is the same, the skip is not)
    dry_run_skipped: list[str] = field(default_factory=list)


def run_cycle(ctx: Context, settings: RunSettings) -> CycleResult:
    """Recover, retry waiting promotions, then run one cycle: the daemon's job, run once."""

    with ctx.lock():
        recover(ctx)
        if ctx.approval_expiry:  # without a daemon, nothing else records them
            expire_approvals(ctx, ctx.approval_expiry)
        retry_ready(ctx)
        if ctx.target.config.watch_after_promotion:
            watch_pending(ctx)  # promotions a killed run never checked
        return Cycle(ctx, settings).run()


@contextmanager
def _said(report: PhaseReport) -> Iterator[None]:
    """An analysis that fails says why in its own words, without the exception's name."""
    try:
        yield
    except AnalysisFailed as exc:
        report.fail(str(exc))
        raise


def retry_ready(ctx: Context) -> list[str]:
    """Promote approved changes that were waiting (for a clean tree, or for a resume)."""
    done: list[str] = []
    if ctx.paused():
        return done
    for row in ctx.history.attempts(
        target=ctx.target.name, statuses=(AttemptStatus.READY_TO_PROMOTE,)
    ):
        status, _ = promote_and_watch(ctx, row["improvement_id"])
        if status != AttemptStatus.READY_TO_PROMOTE:
            finish_attempt(ctx, row["improvement_id"])
            done.append(row["improvement_id"])
    return done


class Cycle:
    def __init__(self, ctx: Context, settings: RunSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.cycle_id = new_id()
        resolved = settings.resolved(ctx.policy)
        self.dry_run = resolved.dry_run
        self.max_changes = resolved.max_changes
        # Attempts in these states settle a finding (for the generator that made them).
        self.settled_statuses = (
            set(WAITING)
            | set(SETTLED_AGAINST)
            | ({AttemptStatus.DRY_RUN} if self.dry_run else set())
        )
        self.skipped: list[str] = []
        self.dry_run_skipped: list[str] = []

    def generator_for(self, finding: Finding) -> str | None:
        generator = self.claimant(finding)
        return generator.name if generator is not None else None

    def claimant(self, finding: Finding) -> Generator | None:
        """The first configured generator able to act on the finding that is not off."""
        for generator in self.ctx.generators:
            if self.usable(generator) and generator.can_handle(finding):
                return generator
        return None

    def usable(self, generator: Generator) -> bool:
        # One that failed on its own account earlier in this cycle is off for the rest of it.
        health = self.ctx.generator_health
        return health is None or health.is_healthy(generator)

    def generator_failed(self, generator: Generator, reason: str) -> None:
        if self.ctx.generator_health is not None:
            self.ctx.generator_health.failed(generator, reason)

    def fallback(
        self, finding: Finding, base: str, tried: list[Generator]
    ) -> tuple[Generator, str] | None:
        """The generator to try next on a finding whose generator failed on its own account,
        and its fingerprint: the first one able to act on it that is not off, not tried yet,
        and has not settled this finding on the same code already."""
        for generator in self.ctx.generators:
            if any(generator is t for t in tried):
                continue
            if not self.usable(generator) or not generator.can_handle(finding):
                continue
            fingerprint = self.fingerprint(generator, finding, base)
            if fingerprint is not None and not self.settled(fingerprint):
                return generator, fingerprint
        return None

    def fingerprint(self, generator: Generator, finding: Finding, base: str) -> str | None:
        """What an attempt is known by: the generator, the finding and the file's content (so
        the same change is not proposed again for the same code, and is when the code
        changed), and what in the file it is about when a finding says (a feature's test or
        function: two in one file are two findings). None: the file is not in `base`."""
        blob = ""
        if finding.file:
            try:
                blob = self.ctx.repo().git("rev-parse", f"{base}:{finding.file}")
            except RepoError:
                return None
        key = f"{generator.name}|{finding.kind}|{finding.file}|{blob}"
        subject = finding.details.get("subject")
        if subject:
            key += f"|{subject}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def settled(self, fingerprint: str) -> list[tuple[str, str]]:
        """(id, status) of the earlier attempts that already decided this fingerprint (not
        those a human opened again with `overseer retry`)."""
        return [
            (iid, status)
            for iid, status in self.ctx.history.fingerprint_attempts(
                fingerprint, self.ctx.target.name
            )
            if status in self.settled_statuses
        ]

    def parameters(self) -> dict[str, Any]:
        return {
            **self.settings.to_dict(),
            "dry_run": self.dry_run,
            "max_changes": self.max_changes,
            "autonomy": self.ctx.policy.autonomy.value,
            "policy": self.ctx.policy.source,
            "policy_version": self.ctx.policy.version,
            "generators": [g.name for g in self.ctx.generators],
            # So approvals and rollbacks later use the settings this cycle used.
            "target_config": self.ctx.target.config.model_dump(mode="json"),
        }

    def run(self) -> CycleResult:
        ctx, target = self.ctx, self.ctx.target
        repo = ctx.repo()
        base = repo.branch_head(target.branch)
        started = CycleStarted(
            cycle_id=self.cycle_id,
            target=target.name,
            branch=target.branch,
            dry_run=self.dry_run,
            parameters=self.parameters(),
        )
        ctx.history.start_cycle(started, target_path=str(target.root))
        ctx.bus.emit(started)
        try:
            analysis = self.analyze(base)
        except AnalysisFailed as exc:
            return self.not_evaluable(base, exc)
        except Exception as exc:
            log.exception("analysis failed")
            return self.finish("failed", f"analysis failed: {type(exc).__name__}: {exc}", [])
        except BaseException:
            self.finish("interrupted", "interrupted during ANALYZE", [])
            raise
        fault_point("after:ANALYZE")
        attempts: list[AttemptRow] = []
        notes: list[str] = []
        try:
            for finding, generator, fingerprint in self.candidates(analysis, base):
                if len(attempts) >= self.max_changes or analysis.baseline_failure:
                    break
                ctx.stop.checkpoint("the next attempt")
                limited = RateLimiter(ctx.history, ctx.policy, ctx.clock).why_not(
                    target.name, dry_run=self.dry_run
                )
                if limited:
                    notes.append(f"rate limit: {limited}")
                    self.skip_phase(None, Phase.GENERATE, f"no change started: {limited}")
                    break
                attempt = Attempt(self, analysis, finding, generator, fingerprint, base)
                attempts.append(attempt.run())
            self.settle_baseline(analysis)
        except AnalysisFailed as exc:
            return self.not_evaluable(base, exc, attempts)
        except BaseException:
            self.finish("interrupted", "interrupted", attempts, analysis)
            raise
        if self.max_changes == 0:
            notes.append("max changes per run is 0: analysis only")
        if self.skipped:
            notes.append(
                f"skipped {len(self.skipped)} change(s) already made on the same code: "
                + ", ".join(self.skipped[:3])
                + (" …" if len(self.skipped) > 3 else "")
                + " (`overseer show ID` says why, `overseer retry ID` proposes one again)"
            )
        if not attempts and not notes:
            area = self.settings.area
            if area == features.AREA and not analysis.findings:
                notes.append(f"nothing to improve in area {area}: {features.NONE_FOUND}")
            elif area != "auto" and not analysis.findings:
                notes.append(f"nothing to improve: no finding in area {area}")
            else:
                notes.append(
                    "nothing to improve: no finding that a configured generator can act on"
                )
        status = "failed" if any(a["status"] == AttemptStatus.ERROR for a in attempts) else "ok"
        summary = "; ".join([f"{a['improvement_id'][:8]} {a['status']}" for a in attempts] + notes)
        return self.finish(status, summary, attempts, analysis)

    def analyze(self, base: str) -> Analysis:
        ctx = self.ctx
        repo = ctx.repo()
        tree = ctx.worktree_path(f"analyze-{self.cycle_id}")

        def make_tree() -> Path:
            repo.add_worktree(tree, base, branch=None)
            return tree

        try:
            with ctx.bus.phase(Phase.ANALYZE, self.cycle_id) as report, _said(report):
                analysis = analyze(
                    ctx.target,
                    base,
                    history=ctx.history,
                    make_tree=make_tree,
                    report=report,
                    area=self.settings.area,
                    generator_for=self.generator_for,
                    cancel=ctx.stop.cancelled,
                    concurrently=lambda: decide(ctx.target.config),
                    bytecode=ctx.bytecode(),
                )
                report.summary = analysis.summary()
        finally:
            if tree.exists():
                repo.remove_worktree(tree)
        ctx.history.finish_cycle(
            self.cycle_id, analysis=analysis.to_dict(), status=CycleStatus.RUNNING
        )
        return analysis

    def settle_baseline(self, analysis: Analysis) -> None:
        """The baseline's tests, left for a candidate's (evaluate/concurrent.py), when no
        attempt ran them: run now, and cached for the next cycle; one that could not be
        evaluated raises AnalysisFailed, as in ANALYZE."""
        if analysis.baseline_failure is not None:
            raise analysis.baseline_failure
        if analysis.pending_baseline is None:
            return
        with commit_tree(self.ctx, f"baseline-{self.cycle_id}", analysis.commit) as tree:
            # Said as ANALYZE's: its run, left over when no attempt ran it.
            said = PhaseReport(self.ctx.bus, Phase.ANALYZE, self.cycle_id, None)
            analysis.tests = analysis.pending_baseline(tree, said)
        analysis.pending_baseline = None

    def candidates(self, analysis: Analysis, base: str) -> Iterator[tuple[Finding, Generator, str]]:
        """Ranked findings a generator can act on, minus those already decided or pending.

        Lazy, so a repository with thousands of findings costs only what the run attempts.
        A dry run also skips changes already dry-run on the same code: re-evaluating them
        would tell nothing new. What settles a finding is an attempt by the same generator, so
        one a broken generator is off for stays open to it once it works again.
        """
        for finding in analysis.findings:
            generator = self.claimant(finding)
            if generator is None:
                continue
            fingerprint = self.fingerprint(generator, finding, base)
            if fingerprint is None:
                continue
            seen = self.settled(fingerprint)
            if seen:
                iid, status = seen[-1]
                self.skipped.append(f"{finding.label} ({status} {iid[:8]})")
                if all(s == AttemptStatus.DRY_RUN for _, s in seen):
                    self.dry_run_skipped.append(f"{finding.label} ({iid[:8]})")
                continue
            yield finding, generator, fingerprint

    def not_evaluable(
        self, base: str, exc: AnalysisFailed, attempts: list[AttemptRow] | None = None
    ) -> CycleResult:
        """The target's tests cannot be evaluated at `base`: said loudly, with what the command
        printed, and recorded with the cycle. No attempt is made, so nothing is settled against
        a finding and the circuit breaker counts nothing: the target's problem, not a change's."""
        target = self.ctx.target
        self.ctx.bus.emit(
            TargetNotEvaluable(
                cycle_id=self.cycle_id,
                target=target.name,
                commit=base,
                reason=exc.why,
                command=exc.command,
                output=exc.output_tail,
            )
        )
        failure = {
            "commit": base,
            "not_evaluable": exc.why,
            "command": exc.command,
            "output_tail": exc.output_tail,
        }
        return self.finish("failed", f"analysis failed: {exc}", attempts or [], failure=failure)

    def skip_phase(self, improvement_id: str | None, phase: Phase, why: str) -> None:
        bus = self.ctx.bus
        bus.emit(PhaseStarted(cycle_id=self.cycle_id, improvement_id=improvement_id, phase=phase))
        bus.emit(
            PhaseFinished(
                cycle_id=self.cycle_id,
                improvement_id=improvement_id,
                phase=phase,
                duration=0.0,
                outcome="skipped",
                summary=why,
            )
        )

    def finish(
        self,
        status: str,
        summary: str,
        attempts: list[AttemptRow],
        analysis: Analysis | None = None,
        *,
        failure: dict[str, Any] | None = None,
    ) -> CycleResult:
        """Close the cycle's row (`failure`: why ANALYZE could not judge the target, kept in
        its `analysis` column for `status`) and say it finished."""
        extra = {"analysis": failure} if failure is not None else {}
        self.ctx.history.finish_cycle(self.cycle_id, status=status, summary=summary, **extra)
        self.ctx.bus.emit(
            CycleFinished(
                cycle_id=self.cycle_id,
                target=self.ctx.target.name,
                status=status,
                summary=summary,
                attempts=[a["improvement_id"] for a in attempts],
            )
        )
        return CycleResult(
            self.cycle_id, status, summary, attempts, analysis, list(self.dry_run_skipped)
        )


class Attempt:
    """One candidate through GENERATE … RECORD, its row kept current at every step."""

    def __init__(
        self,
        cycle: Cycle,
        analysis: Analysis,
        finding: Finding,
        generator: Generator,
        fingerprint: str,
        base: str,
    ) -> None:
        self.cycle = cycle
        self.ctx = cycle.ctx
        self.analysis = analysis
        self.finding = finding
        self.generator = generator
        self.fingerprint = fingerprint
        self.base = base
        self.id = new_id()
        self.tree = self.ctx.worktree_path(self.id)
        self.timings: dict[str, float] = {}
        # A model may be asked again when its candidate fails (generate/repair.py).
        self.rounds = Rounds(save=self.update, announce=self.asked_again)
        self.problems: dict[int, list[str]] = {}  # validation's, per candidate (by id)
        self.deployed: Candidate | None = None

    # -- bookkeeping ----------------------------------------------------------------------

    def update(self, **fields: Any) -> None:
        self.ctx.history.update_attempt(self.id, **fields)

    def phase(self, phase: Phase) -> AbstractContextManager[PhaseReport]:
        self.ctx.stop.checkpoint(phase.value)
        self.update(phase=phase.value)
        return self.ctx.bus.phase(phase, self.cycle.cycle_id, self.id)

    def timed(self, phase: Phase, seconds: float) -> None:
        self.timings[phase.value] = round(seconds, 3)

    def analysis_results(self) -> dict[str, Any]:
        data = self.analysis.to_dict(top=10)
        data["chosen"] = self.finding.to_dict()
        return data

    # -- the phases -----------------------------------------------------------------------

    def run(self) -> AttemptRow:
        ctx, target = self.ctx, self.ctx.target
        ctx.history.create_attempt(
            improvement_id=self.id,
            cycle_id=self.cycle.cycle_id,
            target=target.name,
            target_path=str(target.root),
            target_branch=target.branch,
            base_commit=self.base,
            phase=Phase.GENERATE.value,
            dry_run=int(self.cycle.dry_run),
            analysis_results=self.analysis_results(),
            generator=self.generator.name,
            finding_kind=self.finding.kind,
            finding=self.finding.to_dict(),
            fingerprint=self.fingerprint,
            policy_version=ctx.policy.version,
        )
        try:
            # A model loaded once for all rounds, its process killed when the cycle is cancelled.
            with self.rounds.held(self.generator, ctx.stop.cancelled):
                self.until_evaluated()
        except HistoryUnavailable:
            # Nothing can be recorded now (locked by another process, disk full): leave no
            # worktree behind if git can still remove it; the row is closed by recovery
            # once the database is writable (recovery removes the worktree otherwise).
            try:
                self.cleanup()
            except Exception:
                log.warning("attempt %s: its worktree is left to recovery", self.id, exc_info=True)
            raise
        except Exception as exc:
            log.exception("attempt %s failed unexpectedly", self.id)
            reason = f"overseer error: {type(exc).__name__}: {exc}"
            move(self.ctx, self.id, AttemptStatus.ERROR, reason=reason)
            self.cleanup()
        except BaseException as exc:
            row = ctx.history.get(self.id)
            why = str(exc) or type(exc).__name__
            if isinstance(exc, CycleStopped) and ctx.stop.reason not in why:
                why = f"{ctx.stop.reason}; {why}"
            reason = f"interrupted in phase {row['phase']}: {why}"
            move(
                ctx,
                self.id,
                AttemptStatus.INTERRUPTED,
                reason=reason,
                completed_at=ctx.history.now(),
            )
            self.cleanup()
            ctx.bus.emit(
                AttemptFinished(
                    improvement_id=self.id, status=AttemptStatus.INTERRUPTED, reason=reason
                )
            )
            raise
        fault_point("after:EVALUATE")
        finish_attempt(ctx, self.id, cycle_id=self.cycle.cycle_id, timings=self.timings)
        return ctx.history.get(self.id)

    def until_evaluated(self) -> tuple[str, str | None]:
        return until_settled(self.one_round, self.ctx.stop.checkpoint)

    def asked_again(self, request: RepairRequest) -> None:
        self.ctx.bus.emit(
            RepairRequested(
                improvement_id=self.id,
                round=request.round,
                rounds=request.rounds,
                phase=request.phase,
                reason=request.failure.splitlines()[0][:300],
            )
        )

    def one_round(self) -> tuple[str, str | None]:
        """GENERATE → SAFETY → DEPLOY → EVALUATE, each gate whatever an earlier round passed;
        a phase raises AskAgain when the model is to repair what failed."""
        candidates = self.generate()
        fault_point("after:GENERATE")
        if not candidates:
            return AttemptStatus.FAILED, None
        chosen = self.safety(candidates)
        fault_point("after:SAFETY")
        if chosen is None:
            return AttemptStatus.DENIED, None
        candidate, verdict = chosen
        self.deploy(candidate, verdict)
        fault_point("after:DEPLOY")
        return self.evaluate(verdict)

    def generate(self) -> list[Candidate]:
        repo = self.ctx.repo()
        again = False
        with self.phase(Phase.GENERATE) as report:
            if self.rounds.request is None:  # a later round has its worktree already
                repo.add_worktree(self.tree, self.base, branch=None)
            faults: list[dict[str, Any]] = []  # generators that failed on their own account
            try:
                candidates = self.first_candidates(faults)
            except GeneratorFault:
                # No generator able to act on the finding works now: not the finding's fault.
                # An error (not learned from, not counted by the breaker), so it is tried again
                # by a later cycle, by the first of them that works again.
                named = "; ".join(f"{f['generator']}: {f['reason']}" for f in faults)
                why = named if len(faults) > 1 else faults[0]["reason"]
                report.fail(named)
                self.rounds.generated(faults[-1].get("generation"))
                self.rounds.verdict(Phase.GENERATE.value, "error", why)
                move(
                    self.ctx,
                    self.id,
                    AttemptStatus.ERROR,
                    reason=f"generation failed: {why}; it will be tried again",
                    generation={"generators_failed": faults},
                )
                self.cleanup()
                candidates = []
            except GenerationFailed as exc:
                report.fail(f"{self.generator.name}: {exc}" + self.after_faults(faults))
                self.rounds.generated(exc.provenance)
                repairable = unusable(exc)
                candidates = []
                if repairable and self.rounds.again(
                    self.generator, Phase.GENERATE.value, "failed", *repairable
                ):
                    again = True
                else:
                    self.rounds.verdict(Phase.GENERATE.value, "failed", str(exc))
                    move(
                        self.ctx,
                        self.id,
                        AttemptStatus.FAILED,
                        reason=f"generation failed: {exc}" + self.rounds.after(self.generator),
                        generation=self.with_faults(exc.provenance, faults) or None,
                    )
                    self.cleanup()
            else:
                first = candidates[0]
                more = f" (best of {len(candidates)})" if len(candidates) > 1 else ""
                report.summary = (
                    f"{self.generator.name} {first.finding.kind} in {first.target_file}{more}"
                )
                report.summary += self.after_faults(faults)
                if faults:
                    for candidate in candidates:  # SAFETY records the N-best from these
                        candidate.provenance["generators_failed"] = faults
                self.rounds.generated(first.provenance)
                generation = first.provenance if self.generator.name != "ruff_fix" else {}
                self.update(
                    generation=self.with_faults(generation, faults) or None,
                    change_type=first.change_type,
                    stated_risk=first.stated_risk.value,
                )
        self.timed(Phase.GENERATE, report.duration)
        if again:
            raise AskAgain
        if not candidates:
            for phase in (Phase.SAFETY, Phase.DEPLOY, Phase.EVALUATE):
                self.cycle.skip_phase(self.id, phase, "no candidate")
        return candidates

    def first_candidates(self, faults: list[dict[str, Any]]) -> list[Candidate]:
        """The candidates of the generator that claimed the finding or, when it fails on its
        own account (a model that does not load, an endpoint down), of the next one able to
        act on it, in the same attempt: a broken generator listed first must not starve the
        others. Each such failure turns its generator off and is noted in `faults`.

        The attempt then belongs to the generator that produced the candidates (or failed on
        the finding): its row and fingerprint are that generator's, so what it settles is
        settled for it alone."""
        tried: list[Generator] = []
        while True:
            tried.append(self.generator)
            try:
                return self.rounds.generate(self.generator, self.finding, self.tree)
            except GeneratorFault as exc:
                faults.append(
                    {
                        "generator": self.generator.name,
                        "reason": str(exc),
                        "generation": exc.provenance or None,
                    }
                )
                self.cycle.generator_failed(self.generator, str(exc))
                self.ctx.stop.checkpoint("the next generator")
                # A repair round is the same generator's, or no one's.
                first = self.rounds.request is None
                after = self.cycle.fallback(self.finding, self.base, tried) if first else None
                if after is None:
                    raise
                self.generator, self.fingerprint = after
                self.update(generator=self.generator.name, fingerprint=self.fingerprint)

    @staticmethod
    def with_faults(
        generation: dict[str, Any] | None, faults: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """A generation record that also says which generators failed before, and why."""
        return {**(generation or {}), "generators_failed": faults} if faults else generation or {}

    @staticmethod
    def after_faults(faults: list[dict[str, Any]]) -> str:
        if not faults:
            return ""
        return f" (after {', '.join(f['generator'] for f in faults)} failed)"

    def judge(self, candidate: Candidate) -> tuple[Verdict, CandidateFacts]:
        """One candidate through validation and the policy."""
        ctx = self.ctx
        problems = validate(candidate, self.tree)
        score = predict(ctx, candidate_row(candidate)).probability
        command = resolve_test_command(ctx.target.config, ctx.target.root).command
        facts = facts_of(
            candidate, self.finding.area, score, runner_files=command_files(command, self.tree)
        )
        verdict = ctx.policy.judge(facts, require_approval=self.cycle.settings.require_approval)
        self.problems[id(candidate)] = problems
        for problem in reversed(problems):
            verdict.deny(problem)
        return verdict, facts

    def safety(self, candidates: list[Candidate]) -> tuple[Candidate, Verdict] | None:
        """Every candidate through SAFETY on its own; the best allowed one goes on."""
        again = False
        with self.phase(Phase.SAFETY) as report:
            judged = [(c, *self.judge(c)) for c in candidates]
            ranked = sorted(
                judged,
                key=lambda j: (j[1].decision.rank, j[1].risk.rank, j[0].lines_changed),
            )
            candidate, verdict, facts = ranked[0]
            secret_files = self.ctx.policy.policy.secrets.files
            approval = verdict.decision is Decision.NEEDS_APPROVAL
            score = facts.predicted_success
            fields: dict[str, Any] = dict(
                risk_level=verdict.risk.value,
                risk_reasons=verdict.reasons,
                verdict=verdict.decision.value,
                verdict_detail=verdict.to_dict(),
                policy_facts={
                    **facts.to_dict(),
                    "require_approval": self.cycle.settings.require_approval,
                },
                approval_required=int(approval),
                success_score=score,
                # A model's edits become a diff only now, once SAFETY has applied them.
                target_file=candidate.target_file,
                files_changed=list(candidate.paths),
                lines_changed=candidate.lines_changed,
                generated_code=candidate.recorded_diff(secret_files),
                change_type=candidate.change_type,
                stated_risk=candidate.stated_risk.value,
                impact=candidate.impact,
                rationale=candidate.rationale,
                summary=candidate.summary,
                # What people said when they rejected this kind of change before.
                similar_rejections=self.ctx.history.rejections_like(
                    candidate.finding.kind, candidate.target_file
                )
                or None,
            )
            if len(judged) > 1:
                generation = dict(candidate.provenance)
                generation["candidates"] = [
                    {
                        "summary": c.summary,
                        "decision": v.decision.value,
                        "risk": v.risk.value,
                        "reasons": v.reasons,
                        "diff": c.recorded_diff(secret_files),
                        "chosen": c is candidate,
                    }
                    for c, v, _ in judged
                ]
                fields["generation"] = generation
            self.update(**fields)
            if verdict.decision is Decision.DENY:
                why = verdict.why()
                if len(judged) > 1:
                    why = f"all {len(judged)} candidates denied; the best: {why}"
                report.fail(f"denied: {why}")
                failure = malformed(
                    verdict.because.get(Decision.DENY.value, []), self.problems[id(candidate)]
                )
                if failure and self.rounds.again(
                    self.generator,
                    Phase.SAFETY.value,
                    "denied",
                    failure,
                    reply_of(candidate.provenance),
                ):
                    again = True
                else:
                    self.rounds.verdict(Phase.SAFETY.value, "denied", why)
                    reason = f"denied: {why}" + self.rounds.after(self.generator)
                    move(self.ctx, self.id, AttemptStatus.DENIED, reason=reason)
                    self.cleanup()
            else:
                gate = f"approval required ({verdict.why()})" if approval else "may promote itself"
                best = f" · best of {len(judged)}" if len(judged) > 1 else ""
                report.summary = f"risk {verdict.risk.value} · {gate}{best}" + (
                    " · dry-run" if self.cycle.dry_run else ""
                )
        self.timed(Phase.SAFETY, report.duration)
        if again:
            raise AskAgain
        if verdict.decision is Decision.DENY:
            for phase in (Phase.DEPLOY, Phase.EVALUATE):
                self.cycle.skip_phase(self.id, phase, "denied")
            return None
        return candidate, verdict

    def deploy(self, candidate: Candidate, verdict: Verdict) -> None:
        ctx = self.ctx
        with self.phase(Phase.DEPLOY) as report:
            branch = None if self.cycle.dry_run else branch_name(self.id)
            message = commit_message(candidate, self.id, verdict.risk.value, verdict.reasons[:4])
            commit = deploy(
                candidate,
                self.tree,
                improvement_id=self.id,
                message=message,
                identity=ctx.identity,
                branch=branch,
            )
            fault_point("deploy:after-commit")
            self.update(git_branch=branch, git_commit_hash=commit)
            self.deployed = candidate
            where = branch or "a detached HEAD (dry run)"
            report.summary = f"{where} @ {commit[:7]}"
        self.timed(Phase.DEPLOY, report.duration)

    def evaluate(self, verdict: Verdict) -> tuple[str, str | None]:
        ctx = self.ctx
        with self.phase(Phase.EVALUATE) as report:
            cfg = ctx.target.config
            row = ctx.history.get(self.id)
            if cfg.ci is not None and not self.cycle.dry_run:
                evaluation = ci_evaluation(
                    ctx,
                    self.id,
                    branch_name(self.id),  # what DEPLOY named it: not a dry run
                    committed(row),
                    self.tree,
                    self.analysis.tests,
                    report,
                    required=features.required_tests(self.finding),
                )
            elif self.analysis.pending_baseline is not None:
                evaluation = evaluate_with_baseline(
                    ctx,
                    self.analysis,
                    self.tree,
                    report,
                    baseline_tree=lambda: commit_tree(ctx, f"baseline-{self.id}", self.base),
                    required=features.required_tests(self.finding),
                )
            else:
                evaluation = evaluate_tree(
                    ctx,
                    self.tree,
                    self.analysis.tests,
                    report,
                    required=features.required_tests(self.finding),
                )
            if proving.applies(self.finding):  # new tests: collected, reliable, coverage
                proving.judge(ctx, self.tree, self.finding, self.deployed, evaluation, report)
            if speedup.applies(self.finding):  # profiled: the test or benchmark must be faster
                speedup.judge(ctx, evaluation, self.finding, self.base, self.tree, self.id, report)
            if (
                ctx.target.config.benchmark_command
                and evaluation.passed
                and not speedup.times_the_benchmark(self.finding)
            ):
                with commit_tree(ctx, f"bench-{self.id}", self.base) as base_tree:
                    perf = measure_performance(ctx, base_tree, self.tree, report)
                judge_performance(ctx, evaluation, perf)
            self.update(
                tests_passed=evaluation.tests_passed,
                tests_failed=evaluation.tests_failed,
                tests_skipped=evaluation.tests_skipped,
                evaluation=evaluation.to_dict(),
                performance_delta=evaluation.performance_delta,
            )
            # The prediction with the test results known: what success_score records.
            self.update(success_score=predict(ctx, ctx.history.get(self.id)).probability)
            # A command that could not even start is no failure of the candidate: nothing
            # for the model to repair.
            failed = not evaluation.passed and not evaluation.unrunnable
            failure = failing_tests(evaluation.to_dict()) if failed else None
            previous = reply_of(self.deployed.provenance) if self.deployed else ""
            if failure and self.rounds.again(
                self.generator, Phase.EVALUATE.value, "failed", failure, previous
            ):
                report.summary = evaluation.summary() + " · asking the model again"
                report.outcome = "failed"
            else:
                self.rounds.verdict(
                    Phase.EVALUATE.value,
                    "passed" if evaluation.passed else "failed",
                    "; ".join(evaluation.reasons) or None,
                )
                status, reason = self.gate(verdict, evaluation)
                report.summary = evaluation.summary() + f" · {status.replace('_', ' ')}"
                if status in (AttemptStatus.FAILED, AttemptStatus.ERROR):
                    report.outcome = "failed"
                failure = None
        self.timed(Phase.EVALUATE, report.duration)
        if failure:
            self.redeploy()
            raise AskAgain
        return status, reason

    def redeploy(self) -> None:
        """Before a repaired candidate: the worktree made again at the base, the failed round's
        commit (and branch) gone, and nothing of its results left on the row."""
        self.cleanup()
        self.deployed = None
        self.update(**dict.fromkeys(ROUND_RESULTS))
        self.ctx.repo().add_worktree(self.tree, self.base, branch=None)

    def gate(self, verdict: Verdict, evaluation: Evaluation) -> tuple[str, str | None]:
        """After the tests: fail, stop (dry run), wait for a human, or promote."""
        ctx = self.ctx
        if evaluation.unrunnable:
            return self.unrunnable(evaluation)
        if evaluation.baseline_not_evaluable:
            return self.baseline_unusable(evaluation)
        if not evaluation.passed:
            reason = "evaluation failed: " + "; ".join(evaluation.reasons)
            reason += self.rounds.after(self.generator)
            move(ctx, self.id, AttemptStatus.FAILED, reason=reason)
            self.cleanup()
            return AttemptStatus.FAILED, reason
        if self.cycle.dry_run:
            would = (
                "would wait for approval"
                if verdict.decision is Decision.NEEDS_APPROVAL
                else "would promote"
            )
            reason = f"dry run: {would}; nothing was changed"
            move(ctx, self.id, AttemptStatus.DRY_RUN, reason=reason)
            self.cleanup()
            return AttemptStatus.DRY_RUN, reason
        if verdict.decision is Decision.NEEDS_APPROVAL:
            move(ctx, self.id, AttemptStatus.AWAITING_APPROVAL, awaiting_since=ctx.history.now())
            row = ctx.history.get(self.id)
            ctx.bus.emit(
                ApprovalRequested(
                    improvement_id=self.id,
                    target=ctx.target.name,
                    target_file=row["target_file"],
                    change_type=row["change_type"],
                    risk_level=row["risk_level"],
                    reasons=row["risk_reasons"] or [],
                )
            )
            return AttemptStatus.AWAITING_APPROVAL, None
        return promote_and_watch(ctx, self.id)

    def unrunnable(self, evaluation: Evaluation) -> tuple[str, str | None]:
        """The test command did not even start on the candidate (not found, not executable)
        although it ran for the baseline: the environment changed under the cycle. An error,
        not held against the change (not settled, not learned, not counted by the breaker);
        said like a target that cannot be evaluated, and the cached baseline is dropped so the
        next ANALYZE finds out for itself."""
        ctx, why = self.ctx, str(evaluation.unrunnable)
        command = resolve_test_command(ctx.target.config, ctx.target.root)
        reason = (
            f"the test command could not run on the candidate: {why}; not held against the "
            "change, which is tried again once the tests run"
        )
        move(ctx, self.id, AttemptStatus.ERROR, reason=reason)
        ctx.history.forget_baseline(ctx.target.key, self.base, tests_key(command))
        ctx.bus.emit(
            TargetNotEvaluable(
                cycle_id=self.cycle.cycle_id,
                target=ctx.target.name,
                commit=self.base,
                reason=why,
                command=command.command,
                output=evaluation.output_tail[-2000:],
            )
        )
        self.cleanup()
        return AttemptStatus.ERROR, reason

    def baseline_unusable(self, evaluation: Evaluation) -> tuple[str, str | None]:
        """The baseline's tests, run with the candidate's, cannot be evaluated: as when ANALYZE
        finds so, nothing is promoted and nothing is held against the change (an error, not
        settled); the cycle then says the target cannot be evaluated."""
        why = str(evaluation.baseline_not_evaluable)
        reason = (
            f"the tests at {self.base[:7]} cannot be evaluated: {why}; not held against the "
            "change, which is tried again once they can"
        )
        move(self.ctx, self.id, AttemptStatus.ERROR, reason=reason)
        self.cleanup()
        return AttemptStatus.ERROR, reason

    def cleanup(self) -> None:
        remove_attempt_tree(self.ctx, self.id)


def candidate_row(candidate: Candidate) -> AttemptRow:
    """A candidate seen as the predictor sees an attempt, before its tests have run."""
    return {
        "generator": candidate.generator,
        "finding_kind": candidate.finding.kind,
        "change_type": candidate.change_type,
        "stated_risk": candidate.stated_risk.value,
        "lines_changed": candidate.lines_changed,
        "files_changed": list(candidate.paths),
        "target_file": candidate.target_file,
    }


def predict(ctx: Context, row: AttemptRow) -> Prediction:
    if ctx.predictor is None:
        ctx.predictor = Predictor(ctx.history, ctx.state.root / "predictor")
    try:
        return ctx.predictor.predict(row)
    except Exception:  # a broken model file must not stop a cycle: fall back to the prior
        log.exception("the success predictor failed; using its prior")
        ctx.predictor._model = None
        return Prediction(0.5, "prior (the model failed)")
