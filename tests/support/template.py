"""The sample repository (helpers.SAMPLE), built once per session (per xdist worker) and
copied for each test, and its baseline, measured once and handed to the tests that opt in.

A copy keeps the commit hashes, so the baseline a cycle measures at the sample's commit (the
tests and ruff at that commit, cached in the history by target and commit) is the same for
every copy. It is measured by a real dry-run cycle on a copy of its own, the first time a test
asks for it; `warm` then writes those cache rows into a test's state directory, for the
test's own target (whose key depends on the copy's path), before its first cycle. That cycle
takes the baseline from the cache, as a second cycle on an unchanged commit does: only for
tests that prove nothing about running the baseline (tests/test_suite_shape.py checks that a
warmed cycle really is a cache hit).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from overseer.base.clock import SystemClock
from overseer.config import TargetConfig
from overseer.core.plumbing.target import resolve_target
from overseer.core.record.history import History
from overseer.locations import StateDir
from support.helpers import Harness, git, init_repo

# The tables of the history that cache what ANALYZE measures per target and commit: the
# baselines (tests, lint, benchmark) and the tests' durations (for slow-test findings).
CACHE_TABLES = ("baselines", "test_durations")
NAME = "proj"  # the target's name in Harness and daemon_config


class SampleTemplate:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo = init_repo(root / NAME)
        self.commit = git(self.repo, "rev-parse", "HEAD")
        self._measured: tuple[Path, str] | None = None  # the database, the target's key

    def copy(self, dest: Path) -> Path:
        """The sample at `dest`: the same files, history and commit hashes, and no owner: a
        supervisor's record (lock, owner file) belongs to one repository, never to its copies."""
        shutil.copytree(
            self.repo,
            dest,
            symlinks=True,
            ignore=shutil.ignore_patterns("overseer.lock", "overseer-owner.json"),
        )
        return dest

    def measured(self) -> tuple[Path, str]:
        """The history database holding the baseline at the sample's commit, and the key of
        the target it was measured for: a real dry-run cycle on a copy, the first time."""
        if self._measured is None:
            work = self.root / "measured"
            repo = self.copy(work / NAME)
            h = Harness(work, repo, ruff_select=["F"])
            try:
                result = h.cycle(dry_run=True)
                key = h.context().target.key
            finally:
                h.close()
            assert result.status == "ok", result.summary
            self._measured = (work / "state" / "history.sqlite3", key)
        return self._measured

    def warm(self, state_dir: Path, repo: Path, name: str = NAME) -> None:
        """Hand the measured baseline to the history in `state_dir`, for the target `name` at
        `repo` (a copy of the sample)."""
        source, measured_key = self.measured()
        key = resolve_target(TargetConfig(path=repo, name=name)).key
        state = StateDir(state_dir).ensure()
        History(state.database, SystemClock()).close()  # the schema, as the runtime makes it
        conn = sqlite3.connect(state.database)
        try:
            conn.execute("attach database ? as measured", [str(source)])
            for table in CACHE_TABLES:
                columns = [row[1] for row in conn.execute(f"pragma measured.table_info({table})")]
                assert "target" in columns and "commit_sha" in columns, (table, columns)
                values = ", ".join("?" if c == "target" else c for c in columns)
                conn.execute(
                    f"insert into {table} ({', '.join(columns)}) select {values} "
                    f"from measured.{table} where target = ? and commit_sha = ?",
                    [key, measured_key, self.commit],
                )
            conn.commit()
        finally:
            conn.close()
