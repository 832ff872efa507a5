"""An attempt's status changes in one place, along the table of allowed moves, and every move
is recorded as an event."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from overseer.core.lifecycle import AttemptMovedMeanwhile, move
from overseer.core.record.history import HistoryError
from overseer.vocabulary import (
    FINAL,
    IN_PROGRESS,
    TRANSITIONS,
    WAITING,
    AttemptStatus,
    IllegalMove,
)
from support.helpers import Harness

SRC = Path(__file__).parents[2] / "src" / "overseer"


@pytest.fixture
def ctx(tmp_path, repo):
    h = Harness(tmp_path, repo)
    yield h.context(), h
    h.close()


def new_attempt(ctx, iid: str) -> None:
    ctx.history.create_attempt(improvement_id=iid, target="proj", cycle_id="c1")


def test_every_status_has_a_row_in_the_table_and_final_ones_go_nowhere_but_back():
    assert set(TRANSITIONS) == set(AttemptStatus)
    for status in AttemptStatus:
        assert status not in TRANSITIONS[status] or status is AttemptStatus.READY_TO_PROMOTE
    # Only a promoted change can be undone, and only by a revert or its regression.
    for status in FINAL - {AttemptStatus.PROMOTED, AttemptStatus.REGRESSED}:
        assert TRANSITIONS[status] == frozenset(), status
    assert {AttemptStatus.RUNNING, AttemptStatus.PROMOTING} == IN_PROGRESS
    assert {AttemptStatus.AWAITING_APPROVAL, AttemptStatus.READY_TO_PROMOTE} == WAITING


@pytest.mark.parametrize("before", list(AttemptStatus))
def test_each_move_is_checked_against_the_table(ctx, before):
    context, h = ctx
    for n, after in enumerate(AttemptStatus):
        iid = f"{list(AttemptStatus).index(before):02x}{n:02x}aaaaaaaa"
        new_attempt(context, iid)
        assert context.history.move(iid, AttemptStatus.RUNNING, before) or before is (
            AttemptStatus.RUNNING
        )
        if after in TRANSITIONS[before]:
            row = move(context, iid, after, reason=f"to {after.value}")
            assert row["status"] is after and row["failure_reason"] == f"to {after.value}"
        else:
            with pytest.raises(IllegalMove, match=f"from {before.value} to {after.value}"):
                move(context, iid, after)
            assert context.history.get(iid)["status"] is before  # nothing written


def test_a_move_is_an_event_in_the_log(ctx):
    context, h = ctx
    new_attempt(context, "abcabcabcabc")
    move(context, "abcabcabcabc", AttemptStatus.AWAITING_APPROVAL)
    move(context, "abcabcabcabc", AttemptStatus.REJECTED, reason="not now")
    moves = [(e.before, e.after, e.reason) for e in h.events if e.kind == "AttemptMoved"]
    assert moves == [
        ("running", "awaiting_approval", None),
        ("awaiting_approval", "rejected", "not now"),
    ]
    logged = [e for e in context.history.events(improvement_id="abcabcabcabc")]
    assert [e["kind"] for e in logged] == ["AttemptMoved", "AttemptMoved"]


def test_a_move_that_lost_a_race_writes_nothing(ctx):
    """Another process moved the attempt after this one read it: the write is refused."""
    context, _ = ctx
    new_attempt(context, "0123456789ab")
    assert (
        context.history.move("0123456789ab", "awaiting_approval", AttemptStatus.REJECTED) is False
    )
    move(context, "0123456789ab", AttemptStatus.AWAITING_APPROVAL)

    class Racing:  # the other process gets there between the read and the write
        def __init__(self, history):
            self.history = history

        def __getattr__(self, name):
            return getattr(self.history, name)

        def move(self, iid, before, after, **fields):
            self.history.move(iid, before, AttemptStatus.EXPIRED)
            return self.history.move(iid, before, after, **fields)

    context.history = Racing(context.history)
    with pytest.raises(AttemptMovedMeanwhile, match="no longer awaiting_approval"):
        move(context, "0123456789ab", AttemptStatus.READY_TO_PROMOTE)
    assert context.history.get("0123456789ab")["status"] is AttemptStatus.EXPIRED


def test_the_history_refuses_a_status_written_any_other_way(ctx):
    context, _ = ctx
    new_attempt(context, "fedcba987654")
    with pytest.raises(HistoryError, match="only through core/lifecycle.py"):
        context.history.update_attempt("fedcba987654", status="promoted")


def test_only_the_lifecycle_moves_attempts():
    """No other module calls History.move: the table cannot be bypassed."""
    callers = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "move"
                and isinstance(node.func.value, ast.Attribute | ast.Name)
                and "history" in ast.unparse(node.func.value)
            ):
                callers.append(str(path.relative_to(SRC)))
    assert set(callers) == {"core/lifecycle.py"}, callers
