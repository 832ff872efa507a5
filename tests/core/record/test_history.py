"""The history database: one written by an earlier version is brought up to date."""

from __future__ import annotations

import sqlite3

import pytest

from overseer.base.clock import FakeClock
from overseer.core.record.history import SCHEMA_VERSION, History, HistoryUnavailable

# What schema version 2 added (repair rounds), and where.
ADDED = {"improvements": ("rounds", "repair_rounds_used"), "outcomes": ("repair_rounds_used",)}


def version_1(path) -> None:
    """A database as version 1 wrote it: without the columns added since, one attempt in it."""
    History(path, FakeClock()).close()
    conn = sqlite3.connect(path)
    for table, columns in ADDED.items():
        for column in columns:
            conn.execute(f"alter table {table} drop column {column}")
    conn.execute("update meta set value = '1' where key = 'schema_version'")
    conn.execute(
        "insert into improvements (improvement_id, status, started_at, generation) "
        "values ('abc123', 'failed', '2024-01-01T00:00:00+00:00', '{\"prompt\": \"p\"}')"
    )
    conn.commit()
    conn.close()


def test_a_version_1_database_gains_the_new_columns_and_keeps_its_rows(tmp_path):
    path = tmp_path / "history.sqlite3"
    version_1(path)
    with pytest.raises(HistoryUnavailable, match="written by another version"):
        History(path, FakeClock(), read_only=True)  # a reader does not write it
    history = History(path, FakeClock())
    old = history.get("abc123")
    assert old["generation"] == {"prompt": "p"} and old.get("rounds") is None
    history.update_attempt("abc123", rounds=[{"round": 1, "prompt": "p"}], repair_rounds_used=0)
    history.add_outcome(
        improvement_id="abc123", generator="llm", finding_kind="F401", kept=0, repair_rounds_used=0
    )
    history.close()
    reader = History(path, FakeClock(), read_only=True)  # current now: readable without writing
    assert reader.get("abc123")["rounds"] == [{"round": 1, "prompt": "p"}]
    assert reader.outcomes()[0]["repair_rounds_used"] == 0
    reader.close()
    conn = sqlite3.connect(path)
    assert conn.execute("select value from meta where key = 'schema_version'").fetchone() == (
        str(SCHEMA_VERSION),
    )
    for table, columns in ADDED.items():
        have = {row[1] for row in conn.execute(f"pragma table_info({table})")}
        assert set(columns) <= have
    conn.close()
