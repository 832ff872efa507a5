"""Hostile and malformed candidates: each stopped with the right reason, nothing written.

The corpus is in tests/adversarial.py; bench/safety_corpus.py prints its figures.
"""

from __future__ import annotations

import pytest

from adversarial import Harness, corpus
from helpers import Harness as CycleHarness
from helpers import git
from overseer.core.candidate import Candidate
from overseer.core.context import RunSettings
from overseer.core.cycle import run_cycle


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    harness = Harness(tmp_path_factory.mktemp("adversarial"))
    return harness.run()


def test_the_corpus_is_large_and_varied(tmp_path):
    entries = corpus(tmp_path)
    assert len(entries) >= 100
    assert len({e.name for e in entries}) == len(entries)
    assert sum(1 for e in entries if e.edits) >= 30 and sum(1 for e in entries if e.changes) >= 50


def test_every_hostile_candidate_is_stopped_with_the_right_reason(results):
    outcomes, _ = results
    wrong = [
        (o.entry.name, o.decision, o.reasons)
        for o in outcomes
        if not o.stopped or not o.right_reason
    ]
    assert wrong == []
    # Held for a human only where that is the point (tests made easier); the rest are denied.
    for o in outcomes:
        assert (o.decision == "needs_approval") is o.entry.human, o.entry.name


def test_nothing_was_written_anywhere(results):
    _, untouched = results
    assert untouched


class Adversary:
    """A generator that hands over hostile candidates, one per finding, as a model could."""

    name = "adversary"

    def __init__(self, entries):
        self.entries = list(entries)

    def can_handle(self, finding):
        return bool(self.entries)

    def generate(self, finding, tree):
        entry = self.entries.pop(0)
        return [
            Candidate(
                generator=self.name,
                finding=finding,
                change_type=entry.change_type,
                stated_risk=entry.stated_risk,
                summary=entry.name,
                impact="",
                rationale="",
                changes=list(entry.changes),
                edits=list(entry.edits),
            )
        ]


@pytest.mark.parametrize(
    "name",
    [
        "absolute path 0 (file)",
        "traversal 1 (edit)",
        "symlink 0 (file)",
        "git internals 1 (edit)",
        "protected path 0 (file)",
        "search text ambiguous",
    ],
)
def test_through_a_whole_cycle_the_target_and_the_outside_stay_untouched(tmp_path, name):
    harness = Harness(tmp_path / "h")
    entry = next(e for e in corpus(harness.outside) if e.name == name)
    cycle = CycleHarness(tmp_path, harness.repo, policy="autonomy: full\n", ruff_select=["F"])
    before, head = harness.fingerprint(), git(harness.repo, "rev-parse", "main")
    ctx = cycle.context()
    ctx.generators = [Adversary([entry])]
    result = run_cycle(ctx, RunSettings(dry_run=False, require_approval=False))
    cycle.close()
    [attempt] = result.attempts
    assert attempt["status"] == "denied"
    assert entry.expect in attempt["failure_reason"]
    assert git(harness.repo, "rev-parse", "main") == head
    assert harness.fingerprint() == before  # the repository, its worktree and the outside
