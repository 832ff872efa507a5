"""The fault drills' equipment: a small target, the real daemon as a process, a change that
waits for a human from before the fault, and the invariants of docs/architecture.md checked after it.

Every drill ends with `Drill.assert_invariants`, on the state the restarted daemon left:

- the history database is intact, no attempt is left `running`/`promoting`, no cycle is left
  `running`, and every settled attempt is closed (it has `completed_at`);
- every overseer commit on the target branch (its `Overseer-Improvement-Id` trailer) has a
  history row that says it was deployed, and every row that says so has its commit there;
- the only worktrees and `overseer/*` branches are those of attempts waiting for a human, and
  no process runs in overseer's worktrees any more;
- approvals: what waited for a decision before the fault still does (unless the drill decided
  it), and no recorded decision is lost;
- rate limits: the spend counts exactly what it counted before plus what the drill says was
  really made (a commit on a candidate branch), and the circuit breaker did not trip;
- the user's checkout: on its branch, clean but for the user's untracked notes, which are
  untouched, and no `index.lock` left in it.
"""

from __future__ import annotations

import itertools
import os
import shlex
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from overseer.base.clock import SystemClock
from overseer.config import TargetConfig
from overseer.core.plumbing.target import resolve_target
from overseer.core.record.history import History
from support.daemons import DaemonProcess
from support.helpers import (
    PYPROJECT,
    Harness,
    daemon_config,
    git,
    init_repo,
    rows,
)

TRAILER = "Overseer-Improvement-Id"
WAITING = ("awaiting_approval", "ready_to_promote")
IN_PROGRESS = ("running", "promoting")
DEPLOYED = ("promoted", "regressed")

# One finding in util.py (the change the drills make), two in waiting.py (ranked first: the
# change that waits for a human, by the policy's rule).
UTIL = "import json\n\n\ndef double(x):\n    return x * 2\n"
WAITING_PY = "import os\nimport sys\n\n\ndef one():\n    return 1\n"
TEST_UTIL = """from pkg.util import double


def test_double():
    assert double(2) == 4
"""
FILES = {
    "pyproject.toml": PYPROJECT,
    ".gitignore": "__pycache__/\n.venv/\n",
    "pkg/__init__.py": "",
    "pkg/util.py": UTIL,
    "pkg/waiting.py": WAITING_PY,
    "tests/test_util.py": TEST_UTIL,
}
POLICY = """version: 1
autonomy: limited
areas: [quality]
rules:
  - name: drill-waits
    when: {paths: [pkg/waiting.py]}
    verdict: needs_approval
    reason: the drill keeps one change waiting for a human
"""
NOTES = "the user's own notes, never committed\n"
# The drills are about overseer's record, not about test output: a test command that costs a
# Python start-up, not a pytest session's.
# A runner that is not pytest must say which tests ran (or nothing is evaluable): these
# commands end by writing a one-test JUnit report where `junit_xml` points.
JUNIT_REPORT = (
    "open('drill-report.xml', 'w').write("
    '\'<testsuite><testcase classname="drill" name="double"/></testsuite>\')\n'
)
FAST_TESTS = f"{shlex.quote(sys.executable)} -c " + shlex.quote(
    "from pkg.util import double; import pkg.waiting; assert double(2) == 4\n" + JUNIT_REPORT
)
TARGET = {
    "ruff_select": ["F401"],
    "watch_after_promotion": False,
    "test_timeout": 60,
    "test_command": FAST_TESTS,
    "junit_xml": "drill-report.xml",
}

_numbers = itertools.count(1)


@dataclass
class Before:
    """What the invariants compare with: the state just before the fault."""

    main: str
    attempts: set[str]
    waiting: dict[str, str]  # attempt → status
    approvals: list[tuple[Any, ...]]
    spent: tuple[int, int]  # the rate-limit spend of the last hour and day
    breaker: Any
    cycles: int  # finished so far


class Drill:
    """A drill on the target `name` (a repository at tmp/name); several drills in one tmp share
    the state directory, the socket and the configuration file (the last `configure` writes it:
    name every target there), and each checks the invariants of its own target."""

    def __init__(
        self, tmp: Path, sockdir: Path, files: dict[str, str] | None = None, name: str = "proj"
    ) -> None:
        self.tmp = tmp
        self.name = name
        self.repo = init_repo(tmp / name, files or FILES)
        self.key = resolve_target(TargetConfig(path=self.repo, name=name)).key
        (self.repo / "NOTES.txt").write_text(NOTES)  # the user's untracked work
        self.state = tmp / "state"
        self.database = self.state / "history.sqlite3"
        self.socket = sockdir / "s.sock"
        self.daemons: list[DaemonProcess] = []
        self.configure()

    def configure(self, target: dict[str, Any] | None = None, **sections: Any) -> None:
        self.config, _ = daemon_config(
            self.tmp,
            self.repo,
            self.socket,
            policy=POLICY,
            defaults={"require_approval": False},
            target={**TARGET, **(target or {})},
            **sections,
        )

    def start(self, fault: str | None = None, preexec: Any = None) -> DaemonProcess:
        """The daemon as a process, with the fault point `fault` armed. Its log goes through a
        pipe, as to journald (a file would fill up with the drill's full disk)."""
        daemon = DaemonProcess(
            self.config,
            self.socket,
            log=self.tmp / f"daemon-{next(_numbers)}.log",
            env={"OVERSEER_FAULT": fault} if fault else None,
            preexec=preexec,
        )
        self.daemons.append(daemon)
        return daemon

    def seed_waiting(self, **target: Any) -> str:
        """One real change waiting for approval (a cycle in this process, the same state);
        `target` overrides the drill's target settings (as `configure` does)."""
        h = Harness(self.tmp, self.repo, policy=POLICY, **{**TARGET, **target})
        try:
            result = h.cycle()
        finally:
            h.close()
        [attempt] = result.attempts
        assert attempt["status"] == "awaiting_approval", attempt
        assert attempt["target_file"] == "pkg/waiting.py"
        return attempt["improvement_id"]

    def finished_cycles(self) -> list[dict[str, Any]]:
        try:
            return [c for c in rows(self.state, "cycles") if c["status"] != "running"]
        except sqlite3.Error:  # no database yet
            return []

    def wait_cycles(self, before: Before, count: int = 1, seconds: float = 60) -> None:
        """Until `count` more cycles than `before` knew of have finished."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if len(self.finished_cycles()) >= before.cycles + count:
                return
            time.sleep(0.05)
        raise AssertionError(f"{count} more cycle(s) did not finish: {self.finished_cycles()}")

    def attempts(self) -> dict[str, dict[str, Any]]:
        """This drill's target's."""
        return {r["improvement_id"]: r for r in rows(self.state) if r["target"] == self.name}

    def new_attempts(self, before: Before) -> list[dict[str, Any]]:
        return [r for i, r in self.attempts().items() if i not in before.attempts]

    def main(self) -> str:
        return git(self.repo, "rev-parse", "main")

    def _spend(self) -> tuple[tuple[int, int], Any]:
        from overseer.core.safety.ratelimit import consecutive_failures

        history = History(self.database, SystemClock())
        try:
            now = history.clock.now()
            spent = (
                history.count_changes_since(self.name, now - timedelta(hours=1)),
                history.count_changes_since(self.name, now - timedelta(days=1)),
            )
            paused = history.get_control("paused")
            return spent, (paused, consecutive_failures(history, self.name))
        finally:
            history.close()

    def before(self) -> Before:
        attempts = self.attempts() if self.database.exists() else {}
        spent, breaker = self._spend() if self.database.exists() else ((0, 0), (None, []))
        return Before(
            main=self.main(),
            attempts=set(attempts),
            waiting={i: r["status"] for i, r in attempts.items() if r["status"] in WAITING},
            approvals=self.approvals(),
            spent=spent,
            breaker=breaker,
            cycles=len(self.finished_cycles()),
        )

    def approvals(self) -> list[tuple[Any, ...]]:
        if not self.database.exists():
            return []
        return [
            (a["improvement_id"], a["decision"], a["user"], a["at"], a["reason"])
            for a in rows(self.state, "approvals")
        ]

    def assert_invariants(
        self,
        before: Before,
        *,
        spent: int,
        decided: dict[str, str] | None = None,
        failures: int = 0,
    ) -> None:
        """The invariants of docs/architecture.md (see the module's docstring), after the drill."""
        decided = decided or {}
        for daemon in self.daemons:
            assert daemon.proc.poll() is not None, "check the invariants with no daemon running"
        conn = sqlite3.connect(self.database)
        try:
            assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
        finally:
            conn.close()
        attempts = self.attempts()

        # Nothing stuck in progress; everything settled is closed.
        assert not [(i, r["status"]) for i, r in attempts.items() if r["status"] in IN_PROGRESS]
        assert not [c["cycle_id"] for c in rows(self.state, "cycles") if c["status"] == "running"]
        unclosed = [
            (i, r["status"], r["phase"])
            for i, r in attempts.items()
            if r["status"] not in WAITING and not r["completed_at"]
        ]
        assert not unclosed, f"settled attempts without completed_at: {unclosed}"

        # The target branch and the history agree, both ways.
        on_main = trailer_commits(self.repo, "main")
        for iid, commits in on_main.items():
            row = attempts.get(iid)
            assert row is not None, f"commit {commits[0][:7]} on main has no history row ({iid})"
            assert row["status"] in DEPLOYED and row["was_deployed"] == 1, (iid, row["status"])
            assert row["git_commit_hash"] in commits
        for iid, row in attempts.items():
            if row["was_deployed"] or row["status"] in DEPLOYED:
                assert iid in on_main, f"{iid} says {row['status']} but main lacks its commit"

        # Worktrees, branches and processes: only what waits for a human is kept.
        waiting = {i for i, r in attempts.items() if r["status"] in WAITING}
        roots = {p.name for p in (self.state / "worktrees").glob("*") if p.is_dir()}
        tree_root = self.state / "worktrees" / self.key
        strays = {r for r in roots - {self.key} if r.rsplit("-", 1)[0] == self.name}
        assert not strays, f"worktrees of {self.name} beside {self.key}: {strays}"
        expected = {self.repo.resolve()} | {(tree_root / i).resolve() for i in waiting}
        assert worktrees(self.repo) == expected
        left = {p.name for p in tree_root.iterdir()} if tree_root.is_dir() else set()
        assert left == waiting, f"stray directories in {tree_root}: {left - waiting}"
        branches = git(
            self.repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/overseer/"
        )
        assert sorted(branches.split()) == sorted(f"overseer/{i}" for i in waiting)
        assert processes_under(self.state) == [], "processes left running in overseer's worktrees"

        # Approvals: nothing that waited was lost, no decision forgotten.
        for iid, status in before.waiting.items():
            assert attempts[iid]["status"] == decided.get(iid, status), (iid, attempts[iid])
        after = self.approvals()
        assert after[: len(before.approvals)] == before.approvals

        # Rate limits and the circuit breaker.
        now_spent, (paused, consecutive) = self._spend()
        assert now_spent == (before.spent[0] + spent, before.spent[1] + spent)
        assert paused is None, f"the circuit breaker tripped: {paused}"
        assert len(consecutive) == len(before.breaker[1]) + failures

        # The user's checkout.
        assert git(self.repo, "symbolic-ref", "HEAD") == "refs/heads/main"
        assert git(self.repo, "status", "--porcelain", "--untracked-files=all") == "?? NOTES.txt"
        assert (self.repo / "NOTES.txt").read_text() == NOTES
        assert not (self.repo / ".git" / "index.lock").exists()

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.kill()


def trailer_commits(repo: Path, branch: str) -> dict[str, list[str]]:
    """Overseer's commits on `branch`, by the attempt their trailer names."""
    out = git(
        repo, "log", f"--format=%H %(trailers:key={TRAILER},valueonly,separator=%x20)", branch
    )
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        sha, *ids = line.split()
        for iid in ids:
            found.setdefault(iid, []).append(sha)
    return found


def worktrees(repo: Path) -> set[Path]:
    out = git(repo, "worktree", "list", "--porcelain")
    return {
        Path(line.removeprefix("worktree ")).resolve()
        for line in out.splitlines()
        if line.startswith("worktree ")
    }


def processes_under(root: Path) -> list[int]:
    """Live processes whose working directory is under `root`."""
    found = []
    root = root.resolve()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = Path(os.readlink(entry / "cwd"))
            except OSError:
                continue
            if cwd.is_relative_to(root):
                found.append(int(entry.name))
    return found


def hold_lock(database: Path) -> subprocess.Popen[str]:
    """Another process holding an exclusive lock on the database until its stdin closes."""
    script = (
        "import sqlite3, sys\n"
        "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "conn.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
        "conn.execute('ROLLBACK')\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def release(locker: subprocess.Popen[str]) -> None:
    assert locker.stdin is not None
    locker.stdin.close()
    assert locker.wait(timeout=30) == 0
