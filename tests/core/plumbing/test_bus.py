"""The event bus stamps and redacts every event it publishes, and the events it carries are
frozen records that cross the socket and come back the same (overseer/vocabulary.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from overseer.base.clock import FakeClock
from overseer.core.plumbing.bus import EventBus
from overseer.vocabulary import (
    EVENT_TYPES,
    ChangeApproved,
    CycleFinished,
    Event,
    PhaseStarted,
    event_from_dict,
)

NOON = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_an_emitted_event_is_stamped_redacted_and_seen_by_every_subscriber():
    bus = EventBus(
        FakeClock(NOON), redact=lambda v: v.replace("hunter2", "***") if isinstance(v, str) else v
    )
    seen: list[Event] = []
    bus.subscribe(seen.append)
    sent = ChangeApproved(improvement_id="abcdef123456", user="ann", reason="pw hunter2 is fine")

    published = bus.emit(sent)

    assert seen == [published]
    assert published.at == NOON
    assert published.fields() == {
        "at": NOON,
        "improvement_id": "abcdef123456",
        "user": "ann",
        "reason": "pw *** is fine",
    }
    assert sent.at is None and sent.reason == "pw hunter2 is fine"  # the original is untouched


def test_an_event_crosses_the_socket_and_comes_back_equal():
    event = CycleFinished(cycle_id="c1", target="proj", status="ok", summary="1 attempt").replace(
        at=NOON
    )
    data = event.to_dict()

    assert list(data)[:2] == ["kind", "at"]
    assert data["kind"] == "CycleFinished" and data["attempts"] == []
    assert event_from_dict(data) == event
    assert event_from_dict({**data, "kind": "FromANewerDaemon"}) is None
    assert event_from_dict({"kind": "CycleFinished", "cycle_id": "c1"}) is None  # fields missing


def test_events_are_frozen_and_keep_no_shared_default():
    first = CycleFinished(cycle_id="c1", target="proj", status="ok", summary="")
    second = CycleFinished(cycle_id="c2", target="proj", status="ok", summary="")
    first.attempts.append("a1")

    assert second.attempts == []
    with pytest.raises(AttributeError, match="CycleFinished is frozen: cannot set status"):
        first.status = "failed"  # type: ignore[misc]
    assert repr(second) == (
        "CycleFinished(at=None, cycle_id='c2', target='proj', status='ok', summary='', attempts=[])"
    )


def test_a_wrong_field_is_named():
    with pytest.raises(TypeError, match="PhaseStarted needs the field phase"):
        PhaseStarted(cycle_id="c1", improvement_id=None)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="PhaseStarted has no field colour"):
        PhaseStarted(cycle_id="c1", improvement_id=None, phase="ANALYZE", colour="red")  # type: ignore[call-arg]


def test_only_events_are_registered_by_name_not_the_families_they_share_fields_from():
    assert "PhaseStarted" in EVENT_TYPES and "ChangeApproved" in EVENT_TYPES
    assert "PhaseEvent" not in EVENT_TYPES and "AttemptEvent" not in EVENT_TYPES
