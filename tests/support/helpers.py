"""Real repositories, real state directories and the real CLI, for the tests."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from overseer.base.clock import Clock
from overseer.config import OverseerConfig, TargetConfig
from overseer.core.context import Context, RunSettings
from overseer.runtime import Runtime
from overseer.vocabulary import Event

ROOT = Path(__file__).resolve().parents[2]  # overseer's own checkout: its config, units, policies

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test User",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test User",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}

# A small flat-layout project with real findings ruff fixes safely (F401 twice) and tests
# that pass.
UTIL = """import json
import os


def double(x):
    return x * 2
"""
TEST_UTIL = """from pkg.util import double


def test_double():
    assert double(2) == 4


def test_double_negative():
    assert double(-3) == -6
"""
PYPROJECT = """[project]
name = "pkg"
version = "0.1.0"

[tool.ruff]
target-version = "py311"
"""
SAMPLE = {
    "pyproject.toml": PYPROJECT,
    "pkg/__init__.py": "",
    "pkg/util.py": UTIL,
    "tests/test_util.py": TEST_UTIL,
    ".gitignore": "__pycache__/\n.venv/\n",
}

# Findings of six more kinds that ruff fixes safely (seven with SAMPLE's F401), each in a
# module of its own that no test imports: with no history each kind is as likely to come
# first as the next, so the ranking's draw decides (a run seeded otherwise orders them
# otherwise).
EVEN_FINDINGS = {
    "pkg/a.py": "class A():\n    pass\n",  # UP039
    "pkg/b.py": "class B(object):\n    pass\n",  # UP004
    "pkg/c.py": 'C = u"c"\n',  # UP025
    "pkg/d.py": 'D = f"d"\n',  # F541
    "pkg/e.py": "print((1))\n",  # UP034
    "pkg/f.py": 'F = getattr(str, "upper")\n',  # B009
}

LIMITED = "version: 1\nautonomy: limited\nareas: [quality]\n"
SUPERVISED = "version: 1\nautonomy: supervised\n"


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {out.stderr}")
    return out.stdout.strip()


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def init_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    write_files(path, SAMPLE if files is None else files)
    git(path, "init", "--quiet", "--initial-branch=main")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.invalid")
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "-m", "initial")
    return path


def commit_file(repo: Path, name: str, text: str, message: str = "edit") -> str:
    write_files(repo, {name: text})
    git(repo, "add", name)
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def snapshot(repo: Path) -> dict[str, Any]:
    """Everything a user could notice changed: refs, HEAD, index, files, worktrees."""
    files = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo)
        if rel.parts[0] == ".git" or "__pycache__" in rel.parts or not path.is_file():
            continue
        files[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "head": git(repo, "rev-parse", "HEAD"),
        "symbolic": git(repo, "symbolic-ref", "HEAD"),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
        "stash": git(repo, "stash", "list"),
        "files": files,
    }


class Harness:
    """A Runtime on a real state directory, recording every event it emits."""

    def __init__(
        self,
        tmp_path: Path,
        repo: Path,
        policy: str | None = LIMITED,
        clock: Clock | None = None,
        **target: Any,
    ):
        self.tmp_path = tmp_path
        self.repo = repo
        self.state_dir = tmp_path / "state"
        policy_path = None
        if policy is not None:
            policy_path = tmp_path / "policy.yaml"
            policy_path.write_text(policy)
        # Today's order unless a test asks: `auto` decides by how busy the machine is, which a
        # test does not control (tests/core/evaluate/test_concurrent.py covers it).
        target.setdefault("evaluate_concurrently", False)
        self.config = OverseerConfig(
            policy=policy_path, targets=[TargetConfig(path=repo, name="proj", **target)]
        )
        self.rt = Runtime.create(self.config, self.state_dir, clock)
        self.events: list[Event] = []
        self.rt.bus.subscribe(self.events.append)

    def _with_generators(self, generators: list[Any]) -> Harness:
        """The same harness with these generators configured (as the config file lists them)."""
        self.config = self.config.model_validate(
            {**self.config.model_dump(), "generators": generators}
        )
        self.rt.config = self.config
        return self

    @property
    def history(self):  # type: ignore[no-untyped-def]
        return self.rt.history

    def context(self) -> Context:
        return self.rt.context(self.config.targets[0])

    def cycle(self, **settings: Any):  # type: ignore[no-untyped-def]
        from overseer.core.cycle import run_cycle

        defaults = {"dry_run": False, "require_approval": False}
        return run_cycle(self.context(), RunSettings(**{**defaults, **settings}))

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def close(self) -> None:
        self.rt.close()


def rows(state_dir: Path, table: str = "improvements") -> list[dict[str, Any]]:
    conn = sqlite3.connect(state_dir / "history.sqlite3")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"select * from {table} order by rowid")]
    finally:
        conn.close()


def overseer(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
):
    """The real command line, in a child process, as a user runs it."""
    full_env = {**os.environ, **GIT_ENV, **(env or {})}
    for name in ("OVERSEER_CONFIG", "OVERSEER_STATE_DIR"):
        if env is None or name not in env:
            full_env.pop(name, None)
    # Never talk to a daemon the developer happens to run: no socket unless the test says.
    full_env.setdefault("OVERSEER_SOCKET", "/nonexistent/overseer.sock")
    return subprocess.run(
        [sys.executable, "-m", "overseer", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- the daemon -----------------------------------------------------------------------------


@contextlib.contextmanager
def short_dir() -> Iterator[Path]:
    """A directory with a short path, removed afterwards: Unix socket paths are limited to 107
    bytes, and pytest's tmp_path can be longer. Tests take the `sockdir` fixture."""
    path = Path(tempfile.mkdtemp(prefix="ov", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def daemon_config(
    tmp_path: Path,
    repo: Path,
    socket: Path,
    *,
    policy: str = SUPERVISED,
    every: float = 3600,
    target: dict[str, Any] | None = None,
    **sections: Any,
) -> tuple[Path, OverseerConfig]:
    """A real configuration file (so reload can be tested) and its loaded form."""
    import yaml

    from overseer.config import load_config

    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(policy)
    data: dict[str, Any] = {
        "schedule": {"every": every},
        "policy": str(policy_path),
        "state_dir": str(tmp_path / "state"),
        "defaults": {"dry_run": False},
        "daemon": {"socket": str(socket), "shutdown_grace": 5},
        "targets": [{"name": "proj", "path": str(repo), "ruff_select": ["F"], **(target or {})}],
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp_path / "overseer.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, load_config(path)


async def next_event(client, kind: str, timeout: float = 60, where=None):  # type: ignore[no-untyped-def]
    """The next event of `kind` (and matching `where`) from a subscribed client."""
    import asyncio

    async def find():  # type: ignore[no-untyped-def]
        async for event in client.events():
            if event["kind"] == kind and (where is None or where(event)):
                return event
        raise AssertionError(f"the connection closed before {kind}")

    return await asyncio.wait_for(find(), timeout)
