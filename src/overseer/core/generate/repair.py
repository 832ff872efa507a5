"""Repair rounds: a model's candidate that fails is shown why, and the model is asked again.

Within the same attempt, up to its generator's `repair_rounds` times after the first round.
What is repaired:

- a reply that cannot be read (no JSON object, no edits …: UnusableReplies);
- a candidate SAFETY denies only for being malformed — a search text not found or not
  unique, a file that would not parse —, never one the policy denies: the guard's reasons are
  not a puzzle for the model to solve;
- a candidate whose tests fail *by name* in EVALUATE (failed, lost, a feature's test that
  does not pass), never a run that cannot be evaluated, timed out or is merely slower: a test
  run is costly, and those tell the model nothing it can act on.

Every round goes through every gate from the start: a repaired candidate is validated, judged
by the policy and the oracle guard, deployed afresh (the attempt's worktree is made again at
its base commit) and tested again; nothing an earlier round passed is skipped. The attempt is
one attempt whatever its rounds — one row, one outcome — so the circuit breaker and the rate
limits count it once.

What the model is shown of a failure is redacted (plumbing/secrets) and capped here, then
fitted to the model's context by the generator (llm/prompt.py). Each round's prompt, replies,
tokens and verdict are recorded in the attempt's `rounds` — enough to send the same prompts
with the same seeds again —, and `repair_rounds_used` says how many rounds after the first the
change needed (what LEARN keeps with its outcome, and `overseer stats` shows).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from overseer.core.analyze.findings import Finding
from overseer.core.generate.candidate import Candidate, GenerationFailed, UnusableReplies
from overseer.core.plumbing.secrets import redact

# What a model is shown of a failure and of its own reply, at most, before fitting to its
# context: a test's message or a reply can be long, and a repair needs its gist.
MAX_FAILURE_CHARS = 3000
MAX_PREVIOUS_CHARS = 3000
MAX_TESTS_SHOWN = 5
MAX_MESSAGE_CHARS = 600  # of one test's failure message

T = TypeVar("T")


@dataclass(frozen=True)
class RepairRequest:
    """What a repair round asks: the failure of the round before, and the reply that failed."""

    round: int  # the round being asked: 2, 3, …
    rounds: int  # at most
    phase: str  # where the round before failed: GENERATE, SAFETY or EVALUATE
    failure: str  # redacted and capped
    previous: str  # the reply that failed, redacted and capped ("" when there was none)
    spent: int  # tokens the attempt's earlier rounds spent


@runtime_checkable
class Repairer(Protocol):
    """A generator that can be asked again (the llm generator; ruff's fixer cannot)."""

    @property
    def repair_rounds(self) -> int: ...

    def attempt(self, cancel: threading.Event | None = None) -> AbstractContextManager[None]:
        """Held around all rounds of one attempt: what the rounds share (a model loaded once)
        lives that long, and is let go when the attempt ends, however it ends; `cancel` set
        gives up a round at once (the cycle's stop token's)."""
        ...

    def repair(self, finding: Finding, tree: Path, request: RepairRequest) -> list[Candidate]:
        """Candidates for the finding that mend what `request` says failed; raises like
        generate()."""
        ...


def cap(text: str, limit: int) -> str:
    """`text`, redacted, cut to `limit` characters with a note of how much was cut."""
    text = redact(text)
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[… {len(text) - limit:,} more characters not shown]"


def reply_of(provenance: Mapping[str, Any], chosen: int | None = None) -> str:
    """The raw text of the reply a candidate came from (or the first one)."""
    replies = provenance.get("replies") or []
    index = provenance.get("chosen_reply", 0) if chosen is None else chosen
    if not replies or not 0 <= index < len(replies):
        return ""
    return str(replies[index].get("raw") or "")


# -- the failures a model can repair ---------------------------------------------------------


def unusable(exc: GenerationFailed) -> tuple[str, str] | None:
    """For replies that could not be read: what to show (the reasons) and the first reply."""
    if not isinstance(exc, UnusableReplies):
        return None
    replies = exc.provenance.get("replies") or []
    reasons = [str(r["error"]) for r in replies if r.get("error")]
    failure = "Your answer could not be read: " + ("; ".join(reasons) or str(exc))
    return failure, reply_of(exc.provenance, 0)


def malformed(deny_reasons: list[str], problems: list[str]) -> str | None:
    """For a denied candidate: what to show, if validation alone denied it (an edit that
    cannot be applied, a file that would not parse); None when the policy denied it."""
    if not problems or not set(deny_reasons) <= set(problems):
        return None
    return "Your change could not be applied: " + "; ".join(problems)


def failing_tests(evaluation: Mapping[str, Any]) -> str | None:
    """For a candidate whose tests failed: the tests it named and their messages; None when
    no test is named (a run that cannot be evaluated, a timeout, a slowdown)."""
    required = evaluation.get("required") or {}
    named = [
        *(evaluation.get("new_failures") or []),
        *(evaluation.get("lost") or {}),
        *(test for test, what in required.items() if what != "passed"),
    ]
    if not named:
        return None
    messages = evaluation.get("messages") or {}
    added = set(evaluation.get("added_failing") or [])
    lines = ["With your change applied, the tests failed: " + "; ".join(evaluation["reasons"])]
    for test in named[:MAX_TESTS_SHOWN]:
        message = str(messages.get(test) or "").strip()
        what = " (a new test your change added)" if test in added else ""
        lines.append(f"- {test}{what}" + (f": {message[:MAX_MESSAGE_CHARS]}" if message else ""))
    if len(named) > MAX_TESTS_SHOWN:
        lines.append(f"- and {len(named) - MAX_TESTS_SHOWN} more")
    return "\n".join(lines)


# -- the rounds of one attempt ----------------------------------------------------------------

# Of a round's generation record, what its entry in `rounds` keeps.
RECORDED = (
    "prompt",
    "prompt_tokens",
    "window",
    "examples",
    "replies",
    "tokens",
    "not_sent",
    "model_process",
)


class Rounds:
    """The rounds of one attempt: which one it is, what each sent and got and how it ended,
    and whether to ask again. `save` writes the record to the attempt's row (the history
    redacts it again), `announce` says a round is asked (an event)."""

    def __init__(
        self,
        save: Callable[..., None],
        announce: Callable[[RepairRequest], None],
    ) -> None:
        self.save = save
        self.announce = announce
        self.number = 1
        self.records: list[dict[str, Any]] = []
        self.request: RepairRequest | None = None

    @staticmethod
    def limit(generator: object) -> int:
        return 1 + (generator.repair_rounds if isinstance(generator, Repairer) else 0)

    @staticmethod
    def held(
        generator: object, cancel: threading.Event | None = None
    ) -> AbstractContextManager[None]:
        """Around the attempt's rounds: what its generator keeps for all of them."""
        return generator.attempt(cancel) if isinstance(generator, Repairer) else nullcontext()

    @property
    def spent(self) -> int:
        return sum(int(r.get("tokens") or 0) for r in self.records)

    def generate(self, generator: Any, finding: Finding, tree: Path) -> list[Candidate]:
        """The round's candidates: the first round's, or a repair of the round before."""
        if self.request is None:
            candidates: list[Candidate] = generator.generate(finding, tree)
            return candidates
        if not isinstance(generator, Repairer):  # never asked again: limit() is 1
            raise GenerationFailed(f"{generator.name} cannot repair a candidate")
        return generator.repair(finding, tree, self.request)

    def generated(self, provenance: Mapping[str, Any] | None) -> None:
        """Record what the round sent and got (a model's generation record)."""
        record: dict[str, Any] = {"round": self.number}
        record.update({k: v for k, v in (provenance or {}).items() if k in RECORDED})
        if self.request is not None:
            record["shown"] = {"phase": self.request.phase, "failure": self.request.failure}
        self.records.append(record)
        self.write()

    def verdict(self, phase: str, outcome: str, reason: str | None = None) -> None:
        """How the round ended: at which phase, and why (`passed` at EVALUATE, or where the
        attempt stopped: denied, failed, waiting …)."""
        if self.records and self.records[-1]["round"] == self.number:
            self.records[-1]["verdict"] = {"phase": phase, "outcome": outcome, "reason": reason}
            self.write()

    def again(
        self, generator: object, phase: str, outcome: str, failure: str, previous: str
    ) -> bool:
        """The round failed at `phase` in a way the model may repair: record it, and whether
        the model is asked again (then `request` is what it is asked)."""
        self.verdict(phase, outcome, failure)
        rounds = self.limit(generator)
        if self.number >= rounds:
            return False
        self.number += 1
        self.request = RepairRequest(
            round=self.number,
            rounds=rounds,
            phase=phase,
            failure=cap(failure, MAX_FAILURE_CHARS),
            previous=cap(previous, MAX_PREVIOUS_CHARS),
            spent=self.spent,
        )
        self.announce(self.request)
        return True

    def after(self, generator: object) -> str:
        """What a final reason adds when the model was asked more than once."""
        if self.number == 1:
            return ""
        return f" (in round {self.number} of {self.limit(generator)}; every round is recorded)"

    def write(self) -> None:
        self.save(rounds=self.records, repair_rounds_used=self.number - 1)


class AskAgain(Exception):
    """Raised by an attempt's phase once its round failed in a way the model is asked to
    repair (`Rounds.again` said so): the attempt starts the next round."""


def until_settled(one_round: Callable[[], T], checkpoint: Callable[[str], None]) -> T:
    """Round after round until one is settled: the repair loop, whatever runs a round."""
    while True:
        try:
            return one_round()
        except AskAgain:
            checkpoint("the next round")
