"""The `llm` generator: a language model writes the candidate change.

For one finding it builds a prompt (the finding, the code — fitted to the model's context with
the model's own tokenizer — and up to k changes of the same kind that were kept), asks the
model for N candidates (N-best, one seed each), and reads each reply. The edits are applied by
SAFETY, not here: a reply is only a proposal. Everything needed to replay the attempt — the
prompt, the model's identity, the sampling settings, the raw replies — goes into the history,
including for replies that could not be used.

A reply that cannot be used is a failed generation, never a crash: its reason and its text are
recorded (the text capped at MAX_RECORDED_REPLY_CHARS and made storable), so the attempt is
settled and learned from like any other failure.

When the model itself fails (it does not load, its process dies or runs out of its time limit,
its endpoint does not answer) the generator raises GeneratorFault, so the cycle gives the
finding to the next generator and rests this one; a reply that cannot be used, a prompt too
long or a request the model refuses is about the finding, a plain GenerationFailed.
"""

from __future__ import annotations

import ast
import logging
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from overseer.base.globs import first_match
from overseer.config import LLMSettings
from overseer.core.analyze import benchmark, coverage, features
from overseer.core.analyze.findings import Finding
from overseer.core.analyze.profile import hot_files
from overseer.core.generate.candidate import (
    Candidate,
    Edit,
    EditRejected,
    GenerationFailed,
    GeneratorFault,
    RoundNotSent,
    UnusableReplies,
    apply_edits,
)
from overseer.core.generate.llm import Backend, BackendError, build_backend
from overseer.core.generate.llm.backend import RequestRefused, Session
from overseer.core.generate.llm.prompt import PromptTooLong, build_prompt, repair_section
from overseer.core.generate.llm.reply import ReplyRejected, parse_reply, storable
from overseer.core.generate.repair import RepairRequest
from overseer.core.plumbing.secrets import Redactor
from overseer.core.record.history import History
from overseer.vocabulary import AttemptStatus

log = logging.getLogger(__name__)

MAX_SOURCE_BYTES = 512 * 1024
EXAMPLE_DIFF_CHARS = 1500
# Findings about a test, whose fix is usually in the code the test exercises.
TEST_FINDINGS = ("failing_test", "flaky_test", "slow_test", "slow_regression", features.XFAIL)
# The features each `features:` setting lets the model write (analyze/features.py).
FEATURES_ALLOWED = {"none": (), "tested": features.CHECKED, "all": features.KINDS}
CONTEXT_FILES = 2  # modules of the code under test shown with the test
# Of each reply, what the history keeps: enough to see what the model did, while a reply of
# megabytes (runaway sampling, a hostile endpoint) does not grow every row that holds it.
MAX_RECORDED_REPLY_CHARS = 64 * 1024
MAX_REASON_CHARS = 500  # of an unexpected exception's message, as a reply's reason


def recorded_reply(text: str) -> str:
    """A reply's text as the history keeps it: capped, with a marker saying how much was cut,
    and storable (no NUL, no lone surrogate)."""
    if len(text) > MAX_RECORDED_REPLY_CHARS:
        cut = len(text) - MAX_RECORDED_REPLY_CHARS
        text = (
            text[:MAX_RECORDED_REPLY_CHARS]
            + f"\n[… {cut:,} more characters not kept: the reply had {len(text):,}]"
        )
    return storable(text)


class LLMGenerator:
    name = "llm"

    def __init__(
        self,
        settings: LLMSettings,
        history: History | None = None,
        *,
        secret_files: tuple[str, ...] = (),
        redactor: Redactor | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend or build_backend(settings)
        self.history = history
        self.secret_files = secret_files
        self.redactor = redactor or Redactor([])
        # The model's session kept for the rounds of the attempt in progress (attempt()); the
        # worker runs one attempt at a time.
        self._held: _Held | None = None

    def __repr__(self) -> str:
        return f"LLMGenerator({self.backend.identity().get('backend')})"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.settings.backend})"

    def check(self) -> None:
        """The model file is sane, the endpoint answers and serves the model; else why not."""
        try:
            self.backend.check()
        except BackendError as exc:
            raise GeneratorFault(str(exc)) from None

    def can_handle(self, finding: Finding) -> bool:
        if not finding.file or not finding.file.endswith(".py"):
            return False
        if finding.area == features.AREA and finding.kind not in FEATURES_ALLOWED.get(
            self.settings.features, ()
        ):
            return False
        return first_match(self.secret_files, finding.file) is None  # never read into a prompt

    def examples(self, finding: Finding) -> list[tuple[str, str]]:
        """Changes of the same kind that were kept, newest first."""
        if self.history is None or not self.settings.examples:
            return []
        rows = self.history.attempts(statuses=(AttemptStatus.PROMOTED,), limit=50)
        kept = [
            r for r in rows if r.get("finding_kind") == finding.kind and r.get("generated_code")
        ]
        return [
            (
                r["improvement_id"],
                f"{r.get('summary') or ''}\n{(r.get('generated_code') or '')[:EXAMPLE_DIFF_CHARS]}",
            )
            for r in kept[: self.settings.examples]
        ]

    @property
    def repair_rounds(self) -> int:
        return self.settings.repair_rounds

    @contextmanager
    def attempt(self, cancel: threading.Event | None = None) -> Iterator[None]:
        """The rounds of one attempt share one session of the model: a local model is loaded
        once, in one child process, not once a round. The session opens with the first round,
        is kept between rounds while another may come, and is closed after the last one, or
        when the attempt ends, however it ends (failed, stopped, an error). When `cancel` is
        set, the session gives up what it waits for (backend.Backend.session)."""
        held = self._held = _Held(cancel)
        try:
            yield
        finally:
            self._held = None
            held.close()

    @contextmanager
    def _session(self, number: int) -> Iterator[Session]:
        """The model's session for round `number`: the attempt's own (attempt()), or one for this
        round only."""
        held = self._held
        if held is None:
            with self.backend.session() as session:
                yield session
            return
        last = number >= 1 + self.repair_rounds  # no round after it: nothing to keep it for
        try:
            if held.session is None:
                held.session = held.stack.enter_context(self.backend.session(held.cancel))
            else:
                held.session.next_round()
            yield held.session
        except BackendError:
            last = True  # its process may be gone: a later round starts afresh
            raise
        finally:
            if last:
                held.close()

    def generate(self, finding: Finding, tree: Path) -> list[Candidate]:
        return self._generate(finding, tree, None)

    def repair(self, finding: Finding, tree: Path, request: RepairRequest) -> list[Candidate]:
        """Asked again (generate/repair.py): the same prompt, fitted to leave room for what
        failed in the round before and the reply that failed, which follow the code."""
        return self._generate(finding, tree, request)

    def _generate(
        self, finding: Finding, tree: Path, request: RepairRequest | None
    ) -> list[Candidate]:
        if not self.can_handle(finding) or finding.file is None:
            raise GenerationFailed(f"llm does not act on {finding.kind} in {finding.file}")
        path = tree / finding.file
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_SOURCE_BYTES:
            raise GenerationFailed(
                f"{finding.file} is not a regular file under {MAX_SOURCE_BYTES} bytes"
            )
        code = path.read_text(encoding="utf-8", errors="replace")
        s = self.settings
        try:
            model = self.backend.identity()
        except OSError as exc:  # the model file went away since the check: hashing it fails
            raise GeneratorFault(f"the model cannot be read: {exc}") from None
        record: dict[str, Any] = {
            "model": model,
            "settings": {
                "temperature": s.temperature,
                "max_new_tokens": s.max_new_tokens,
                "seed": s.seed,
                "candidates": s.candidates,
                "context_length": s.context_length,
            },
            "replies": [],
            "tokens": 0,  # spent by this round: its prompts and its replies
        }
        candidates = []
        spent = request.spent if request is not None else 0
        number = request.round if request is not None else 1
        try:
            with self._session(number) as session:
                record["model_process"] = session.process()
                budget = session.context_length - s.max_new_tokens
                section, section_tokens = "", 0
                if request is not None:
                    section, section_tokens = repair_section(
                        round=request.round,
                        rounds=request.rounds,
                        phase=request.phase,
                        # Redacted by repair.py; again with this generator's own redactor.
                        failure=self.redactor.text(request.failure),
                        previous=self.redactor.text(request.previous),
                        budget=budget,
                        count=session.count,
                    )
                prompt = build_prompt(
                    finding,
                    finding.file,
                    self.redactor.text(code),
                    self.examples(finding),
                    budget=budget - section_tokens,
                    count=session.count,
                    context=[
                        (other, self.redactor.text(text))
                        for other, text in self.code_under_test(finding, code, tree)
                    ],
                )
                text = prompt.text + ("\n" + section if section else "")
                record["prompt"] = text
                record["prompt_tokens"] = prompt.tokens + section_tokens
                record["window"] = prompt.window
                record["examples"] = prompt.examples
                need = (record["prompt_tokens"] + s.max_new_tokens) * s.candidates
                if s.token_budget is not None and spent + need > s.token_budget:
                    record["not_sent"] = (
                        f"round {number} was not sent: it could take {need:,} tokens, and the "
                        f"attempt has spent {spent:,} of its token budget of {s.token_budget:,}"
                    )
                    if request is not None:
                        failed = request.failure.strip().splitlines()[0][:200]
                        record["not_sent"] += (
                            f"; round {request.round - 1} had failed at {request.phase}: {failed}"
                        )
                    raise RoundNotSent(record["not_sent"], provenance=record)
                for n in range(s.candidates):
                    # Each round its own seeds, the same on every run: replayable.
                    seed = s.seed + n + (number - 1) * s.candidates
                    reply = session.generate(text, seed=seed)
                    record["tokens"] += record["prompt_tokens"] + (
                        reply.tokens if reply.tokens is not None else s.max_new_tokens
                    )
                    entry: dict[str, Any] = {
                        "seed": seed,
                        "raw": "",
                        "tokens": reply.tokens,
                        "seconds": reply.seconds,
                    }
                    record["replies"].append(entry)
                    # Redacted as it arrives: a model that echoes a secret (in its rationale,
                    # its impact, its code) gets it into nothing — not the record, not the
                    # commit message, not the code. Redacted before it is cut, so no secret
                    # is kept half.
                    text = self.redactor.text(reply.text)
                    try:
                        entry["raw"] = recorded_reply(text)
                        parsed = parse_reply(text)
                        candidates.append(self._candidate(finding, parsed, n, record, tree))
                    except ReplyRejected as exc:
                        entry["error"] = str(exc)
                    except Exception as exc:
                        # parse_reply raises nothing else; if it ever does, the reply is still
                        # an unusable one with a reason, not an attempt lost to an error.
                        log.exception("reading reply %d of the model failed", n)
                        entry["error"] = storable(
                            f"the reply could not be read: {type(exc).__name__}: {exc}"
                        )[:MAX_REASON_CHARS]
        except (RequestRefused, PromptTooLong) as exc:
            raise GenerationFailed(str(exc), provenance=record) from None
        except BackendError as exc:
            # It did not load, died, ran out of its time limit or its endpoint is down: no
            # finding would fare better now.
            raise GeneratorFault(str(exc), provenance=record) from None
        if not candidates:
            reasons = "; ".join(r.get("error", "") for r in record["replies"])
            raise UnusableReplies(f"no usable reply from the model: {reasons}", provenance=record)
        return candidates

    def code_under_test(self, finding: Finding, code: str, tree: Path) -> list[tuple[str, str]]:
        """For a failing, slow or xfail test, the project's modules its file imports (up to
        CONTEXT_FILES, found in the tree, never a secret file): the fix is usually there, and
        a model shown only the test could only edit the test. For a NotImplementedError, the
        test that reaches it: what the function is for. For a benchmark regression, the files
        of its other hot functions."""
        if finding.kind == features.NOT_IMPLEMENTED:
            return [
                (rel, (tree / rel).read_text(encoding="utf-8", errors="replace"))
                for rel in finding.details.get("test_files", [])[:1]
                if self._readable(tree, rel)
            ]
        if finding.kind == benchmark.REGRESSION:  # the other hot files; the hottest is its own
            return [
                (rel, (tree / rel).read_text(encoding="utf-8", errors="replace"))
                for rel in [h for h in hot_files(finding) if h != finding.file][:CONTEXT_FILES]
                if self._readable(tree, rel)
            ]
        if finding.kind not in TEST_FINDINGS or finding.file is None:
            return []
        try:
            parsed = ast.parse(code)
        except SyntaxError:
            return []
        modules: list[str] = []
        for node in ast.walk(parsed):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.append(node.module)
            elif isinstance(node, ast.Import):
                modules.extend(alias.name for alias in node.names)
        files: list[str] = []  # a profiled test's hot files first, then as the test imports them
        for hot in hot_files(finding):
            if hot != finding.file and hot not in files and self._readable(tree, hot):
                files.append(hot)
        for module in modules:
            rel = self._module_file(tree, module)
            if rel is not None and rel != finding.file and rel not in files:
                files.append(rel)
        return [
            (rel, (tree / rel).read_text(encoding="utf-8", errors="replace"))
            for rel in files[:CONTEXT_FILES]
        ]

    def _module_file(self, tree: Path, module: str) -> str | None:
        """The file of `module` in the tree (src layout or flat), if it is the project's own."""
        stem = module.replace(".", "/")
        for rel in (
            f"src/{stem}.py",
            f"src/{stem}/__init__.py",
            f"{stem}.py",
            f"{stem}/__init__.py",
        ):
            if self._readable(tree, rel):
                return rel
        return None

    def _readable(self, tree: Path, rel: str) -> bool:
        """A regular file of the tree that may be shown to the model (never a secret)."""
        path = tree / rel
        return (
            first_match(self.secret_files, rel) is None
            and not path.is_symlink()
            and path.is_file()
            and 0 < path.stat().st_size <= MAX_SOURCE_BYTES
        )

    def _candidate(
        self, finding: Finding, reply: Any, n: int, record: dict[str, Any], tree: Path
    ) -> Candidate:
        summary = (
            reply.impact.splitlines()[0][:100]
            if reply.impact
            else f"{finding.kind} in {reply.target_file}"
        )
        feature = finding.change_type == features.CHANGE_TYPE
        change_type = reply.change_type
        if feature:
            change_type = features.CHANGE_TYPE
        elif coverage.is_test_writing(finding):
            change_type = coverage.CHANGE_TYPE
        return Candidate(
            generator=self.name,
            finding=finding,
            # A feature is a feature whatever the model calls it: the rules for features (a
            # test edit only to remove its test's xfail mark) are not for it to opt out of;
            # nor are a new test's (only new test files) for a test-writing change.
            change_type=change_type,
            stated_risk=reply.risk_level,
            summary=summary,
            impact=reply.impact,
            rationale=reply.rationale,
            edits=with_own_mark_removed(finding, reply.edits, tree),
            provenance={**record, "chosen_reply": n},
        )


class _Held:
    """A model's session kept for the rounds of one attempt."""

    def __init__(self, cancel: threading.Event | None) -> None:
        self.stack = ExitStack()
        self.session: Session | None = None
        self.cancel = cancel

    def close(self) -> None:
        self.session = None
        self.stack.close()


def with_own_mark_removed(finding: Finding, edits: list[Edit], tree: Path) -> list[Edit]:
    """For an xfail finding, the model's edits plus the removal of that test's xfail mark (when
    the model's edits leave it): a feature for an xfail test is kept only when the test passes
    without its mark, so the mark goes in the same change. The removal is an edit like the
    model's, applied and checked by SAFETY, which also refuses any other test edit."""
    own = features.own_xfail(finding)
    if own is None:
        return edits
    path, test = own
    file = tree / path
    if file.is_symlink() or not file.is_file():
        return edits
    text = file.read_text(encoding="utf-8", errors="replace")
    try:
        text = apply_edits(path, text, [e for e in edits if e.path == path])
    except EditRejected:
        return edits  # SAFETY refuses these edits, saying why
    mark = (features.xfail_marks(text) or {}).get(test)
    if mark is None:
        return edits  # already removed by the model's own edits
    lines = text.splitlines(keepends=True)
    # From the mark down to the `def` line: unique in the file even where two tests carry
    # the same mark.
    search = "".join(lines[mark.start - 1 : mark.def_line])
    replace = "".join(lines[mark.end : mark.def_line])
    if text.count(search) != 1:
        return edits  # SAFETY says the mark was not removed
    return [*edits, Edit(path, search, replace)]
