"""`overseer demo`: a scratch repository with real problems, and two real cycles on it.

The scratch repository is the demo's own, so the cycles run with dry-run off and a policy
(`autonomy: limited`) that lets low-risk changes promote themselves. Everything else is the
same code path as `overseer run --once`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import click

from overseer.config import OverseerConfig, TargetConfig
from overseer.core.context import RunSettings
from overseer.core.cycle import run_cycle
from overseer.render import EventPrinter, attempts_table
from overseer.runtime import Runtime

STATS = '''"""Small statistics helpers (a scratch project made by `overseer demo`)."""
import os
import sys
from typing import List


def mean(values: List[float]) -> float:
    if len(values) == 0:
        raise ValueError(f"mean of no values")
    return sum(values) / len(values)


def median(values: List[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
'''

TESTS = """import time

import pytest

from stats.core import mean, median


def test_mean():
    assert mean([1, 2, 3, 4]) == 2.5


def test_median_odd():
    assert median([3, 1, 2]) == 2


def test_median_even():
    assert median([4, 1, 3, 2]) == 2.5


def test_mean_of_nothing():
    with pytest.raises(ValueError):
        mean([])


def test_slow_but_correct():
    time.sleep(1.2)  # planted: a slow test that ANALYZE reports
    assert mean([10.0] * 1000) == 10.0
"""

PYPROJECT = """[project]
name = "stats"
version = "0.1.0"
requires-python = ">=3.11"

[tool.ruff]
target-version = "py311"
"""

POLICY = """# The demo's policy: the scratch repository is the demo's own, so low-risk changes in
# the quality area promote themselves. The embedded default (supervised) approves every one.
version: 1
autonomy: limited
max_changes_per_run: 1
areas: [quality]
"""

PLANTED = [
    "stats/core.py: unused imports `os` and `sys` (ruff F401)",
    "stats/core.py: an f-string without placeholders (F541)",
    "stats/core.py: `typing.List` where `list` will do (UP006, UP035)",
    "tests/test_core.py: a test that sleeps 1.2 s (a slow test)",
]


def command_name() -> str:
    """How the user can run overseer again: the script next to this interpreter."""
    script = Path(sys.executable).parent / "overseer"
    if not script.exists():
        return f"{sys.executable} -m overseer"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def make_scratch_repo(repo: Path) -> None:
    (repo / "stats").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "stats" / "__init__.py").write_text('"""stats: made by overseer demo."""\n')
    (repo / "stats" / "core.py").write_text(STATS)
    (repo / "tests" / "test_core.py").write_text(TESTS)
    (repo / "pyproject.toml").write_text(PYPROJECT)
    (repo / ".gitignore").write_text("__pycache__/\n.pytest_cache/\n")

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "--quiet", "--initial-branch=main")
    git("config", "user.name", "demo user")
    git("config", "user.email", "demo@example.invalid")
    git("add", "--all")
    git("commit", "--quiet", "-m", "A small statistics package with a few problems")


def run_demo(
    directory: Path | None,
    *,
    config: OverseerConfig | None = None,
    state_dir: Path | None = None,
    debug: bool = False,
) -> int:
    base = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="overseer-demo-"))
    base = base.resolve()
    repo, policy = base / "repo", base / "policy.yaml"
    state = state_dir.resolve() if state_dir else base / "state"
    if repo.exists():
        click.echo(f"overseer demo: {repo} already exists; pass an empty --dir", err=True)
        return 1
    base.mkdir(parents=True, exist_ok=True)
    make_scratch_repo(repo)
    policy.write_text(POLICY)
    click.echo(click.style("overseer demo", bold=True) + f" — a scratch repository at {repo}")
    click.echo("Planted problems:")
    for line in PLANTED:
        click.echo(f"  · {line}")
    click.echo(f"Policy {policy} (autonomy limited: low-risk quality fixes promote themselves)")
    click.echo(f"State  {state} (history database and worktrees)\n")

    config = (config or OverseerConfig()).model_copy(
        update={
            "policy": policy,
            "targets": [TargetConfig(name="demo", path=repo, slow_test_seconds=1.0)],
        }
    )
    rt = Runtime.create(config, state)
    rt.bus.subscribe(EventPrinter(debug=debug))
    settings = RunSettings(dry_run=False, require_approval=False, max_changes=1, debug=debug)
    ctx = rt.context(config.targets[0])
    status = 0
    for number in (1, 2):
        click.echo(click.style(f"\n── cycle {number} of 2 " + "─" * 50, bold=True))
        result = run_cycle(ctx, settings)
        if result.status != "ok":
            status = 1
        click.echo("")
        click.echo(attempts_table(result.attempts) if result.attempts else result.summary)
        for row in result.attempts:
            if row["status"] == "promoted":
                log = subprocess.run(
                    [
                        "git",
                        "log",
                        "-1",
                        "--stat",
                        "--format=commit %H%n%n    %s%n%n%(trailers)",
                        row["git_commit_hash"],
                    ],
                    cwd=repo,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                click.echo("\nThe commit it made on main:\n" + log.rstrip())
    click.echo(click.style("\n── history " + "─" * 59, bold=True))
    click.echo(attempts_table(rt.history.attempts(target="demo")))
    me = command_name()
    click.echo(
        "\nLook closer:\n"
        f"  {me} show ID --state-dir {state}        # full provenance of one attempt\n"
        f"  {me} rollback ID --state-dir {state}    # revert a promoted change\n"
        f"  git -C {repo} log --oneline"
    )
    rt.close()
    return status
