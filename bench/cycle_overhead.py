"""One overseer cycle against the shell pipeline a careful person would write for the same work.

    .venv/bin/python bench/cycle_overhead.py [--runs 5] [--project pyflakes==4.1.0]

The target is a real third-party project: its source distribution (with its tests) is
downloaded from PyPI by this script, checked against its sha256, and committed into a scratch
repository; nothing of it is kept in this repository. Each run times, on the same commit:

- overseer, cold: `overseer run --once` with a fresh state directory (no cached baseline, so
  ANALYZE runs the tests), the ruff fixer, no approval, promotion to the branch;
- overseer, warm: the same after a dry-run cycle cached the baseline of that HEAD, so only the
  candidate's tests run;
- the shell pipeline: the test command, `ruff check --fix` on the rule and file overseer chose,
  the test command again, `git commit`.

Ratios are overseer / shell, medians of the runs. Targets (issue 8): cold ≤ 1.15, warm ≤ 0.65.
Where the cold cycle spends its time comes from its recorded phase events (duration and the
external programs' share, `external_ms`); the supervisor's share is everything that is not the
target's tests, ruff or git, including the process start-up outside any phase.

The post-promotion watch (which runs the tests a third time) is off here, as the shell pipeline
has nothing like it; its cost is the test run it adds.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urljoin

from summary import record

ROOT = Path(__file__).resolve().parents[1]
OVERSEER = [sys.executable, "-m", "overseer"]
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or "ruff"
# Known source distributions: name==version -> sha256 of the sdist.
KNOWN = {
    "pyflakes==4.1.0": "592beb57058eb82eb190fb7514f2081c555c51000b029ff71286a681e6cf2f83",
    "boltons==26.2.0": "d39cfd15c1a1c3bd4d705c82252fa9edb8e4f5e8cc039f8e39afac7b1b47e92c",
}
IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}
PHASES = ["ANALYZE", "GENERATE", "SAFETY", "DEPLOY", "EVALUATE", "LEARN", "RECORD"]
EXTERNAL = ("tests", "ruff", "git")


def fetch(spec: str, cache: Path) -> bytes:
    """The sdist's bytes, from the cache or PyPI, checked against the known sha256."""
    name, _, version = spec.partition("==")
    cached = cache / f"{name}-{version}.tar.gz"
    if cached.exists():
        data = cached.read_bytes()
    else:
        index = f"https://pypi.org/pypi/{name}/json"
        with urllib.request.urlopen(index, timeout=60) as reply:
            meta = json.load(reply)
        files = meta["releases"].get(version) or []
        sdists = [u for u in files if u["packagetype"] == "sdist"]
        if not sdists:
            raise SystemExit(f"{spec}: PyPI has no source distribution of that version")
        sdist = sdists[0]
        with urllib.request.urlopen(urljoin(index, sdist["url"]), timeout=120) as reply:
            data = reply.read()
        cache.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    expected = KNOWN.get(spec)
    if expected is None:
        print(f"note: {spec} is not a known sdist; its sha256 is {digest}")
    elif digest != expected:
        cached.unlink()
        raise SystemExit(f"{spec}: sha256 {digest} is not the expected {expected}")
    return data


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", *args],
        cwd=repo,
        env={**os.environ, **IDENTITY},
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def scratch_repo(data: bytes, where: Path) -> Path:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(where, filter="data")
    [project] = [p for p in where.iterdir() if p.is_dir()]
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", f"{project.name} as released")
    return project


def reset(repo: Path, commit: str) -> None:
    """Back to the released commit: no overseer branch, worktree or commit left."""
    git(repo, "reset", "-q", "--hard", commit)
    git(repo, "worktree", "prune")
    for branch in git(repo, "branch", "--format=%(refname:short)", "--list", "overseer/*").split():
        git(repo, "branch", "-q", "-D", branch)


def write_config(work: Path, repo: Path, state: Path, test_command: str) -> Path:
    policy = work / "policy.yaml"
    policy.write_text(
        "version: 1\nautonomy: limited\nareas: [quality]\n"
        "limits: {per_hour: 100000, per_day: 100000, circuit_breaker: 0}\n"
    )
    config = work / f"overseer-{state.name}.yaml"
    config.write_text(
        json.dumps(
            {
                "state_dir": str(state),
                "policy": str(policy),
                "defaults": {"dry_run": False, "require_approval": False},
                "targets": [
                    {
                        "path": str(repo),
                        "test_command": test_command,
                        "watch_after_promotion": False,
                        "flaky_reruns": 0,
                    }
                ],
            }
        )
    )
    return config


def overseer_cycle(config: Path, *extra: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        [*OVERSEER, "run", "--once", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        env={**os.environ, **IDENTITY},
    )
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"overseer run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return took


def last_attempt(state: Path) -> dict:
    db = sqlite3.connect(state / "history.sqlite3")
    db.row_factory = sqlite3.Row
    row = dict(db.execute("select * from improvements order by rowid desc limit 1").fetchone())
    events = [
        dict(e)
        for e in db.execute(
            "select phase, duration, detail from phase_events "
            "where kind = 'PhaseFinished' and cycle_id = ? order by id",
            [row["cycle_id"]],
        )
    ]
    db.close()
    row["phases"] = {
        e["phase"]: (e["duration"], json.loads(e["detail"] or "{}").get("external_ms", {}))
        for e in events
    }
    return row


def shell_pipeline(repo: Path, test_command: str, rule: str, file: str) -> float:
    script = (
        f"{test_command} >/dev/null"
        f" && {RUFF} check --no-cache --quiet --fix --select {rule} {file}"
        f"; {test_command} >/dev/null"
        f" && git commit -q -a -m 'fix {rule} in {file}'"
    )
    before = git(repo, "rev-parse", "HEAD")
    started = time.perf_counter()
    proc = subprocess.run(["/bin/sh", "-c", script], cwd=repo, env={**os.environ, **IDENTITY})
    took = time.perf_counter() - started
    if proc.returncode != 0 or git(repo, "rev-parse", "HEAD") == before:
        raise SystemExit(f"the shell pipeline did not commit (exit {proc.returncode})")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--project", default="pyflakes==4.1.0")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "overseer-bench",
    )
    args = parser.parse_args()
    data = fetch(args.project, args.cache)
    work = Path(tempfile.mkdtemp(prefix="overseer-cycle-bench-"))
    try:
        run(args, data, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, data: bytes, work: Path) -> None:
    repo = scratch_repo(data, work / "src")
    released = git(repo, "rev-parse", "HEAD")
    # The same interpreter (which has pytest) for both; no plugins a developer happened to
    # install into it, as in the target's own environment.
    test_command = f"{sys.executable} -m pytest -q -p no:cacheprovider"
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    cold_state, warm_state = work / "cold", work / "warm"
    cold_config = write_config(work, repo, cold_state, test_command)
    warm_config = write_config(work, repo, warm_state, test_command)

    # Warm-up (untimed): fills the page cache and shows which rule and file overseer picks.
    reset(repo, released)
    overseer_cycle(cold_config)
    first = last_attempt(cold_state)
    if first["status"] != "promoted":
        raise SystemExit(
            f"the warm-up cycle was not promoted: {first['status']} ({first.get('failure_reason')})"
        )
    rule, file = first["finding_kind"], first["target_file"]
    tests = f"{first['tests_passed']} passed, {first['tests_skipped']} skipped"
    reset(repo, released)
    shell_pipeline(repo, test_command, rule, file)

    timings: dict[str, list[float]] = {"cold": [], "warm": [], "shell": []}
    breakdown: list[dict] = []
    for i in range(args.runs):
        for kind in ("shell", "cold", "warm") if i % 2 else ("cold", "warm", "shell"):
            reset(repo, released)
            if kind == "shell":
                timings["shell"].append(shell_pipeline(repo, test_command, rule, file))
                continue
            state = cold_state if kind == "cold" else warm_state
            config = cold_config if kind == "cold" else warm_config
            shutil.rmtree(state, ignore_errors=True)
            if kind == "warm":  # a dry-run cycle caches the baseline of this HEAD
                overseer_cycle(config, "--dry-run")
                reset(repo, released)
            took = overseer_cycle(config)
            attempt = last_attempt(state)
            if attempt["status"] != "promoted" or attempt["target_file"] != file:
                raise SystemExit(
                    f"{kind} run {i}: {attempt['status']} on "
                    f"{attempt['target_file']}, expected promoted on {file}"
                )
            timings[kind].append(took)
            if kind == "cold":
                breakdown.append({"wall": took, "phases": attempt["phases"]})
    report(args, timings, breakdown, rule, file, tests)


def report(args, timings, breakdown, rule, file, tests) -> None:  # type: ignore[no-untyped-def]
    med = {k: statistics.median(v) for k, v in timings.items()}
    cold, warm = med["cold"] / med["shell"], med["warm"] / med["shell"]
    print(f"cycle_overhead: {args.project}, rule {rule} in {file}, {args.runs} runs each, medians")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {platform.platform()}"
    )
    if tests:
        print(f"tests: {tests}")
    print()
    print(f"{'':<28}{'seconds':>9}{'ratio':>8}{'target':>9}")
    print(f"{'shell pipeline':<28}{med['shell']:>9.2f}")
    for name, value, target in (("overseer, cold", cold, 1.15), ("overseer, warm", warm, 0.65)):
        key = name.split(", ")[1]
        verdict = "met" if value <= target else "MISSED"
        print(f"{name:<28}{med[key]:>9.2f}{value:>8.2f}{'≤ ' + str(target):>9}  {verdict}")
        record(f"{key} cycle / shell pipeline", f"{value:.2f}", f"≤ {target}", value <= target)
    print(
        "  (all runs, s: "
        + "; ".join(f"{k} " + " ".join(f"{t:.2f}" for t in v) for k, v in timings.items())
        + ")"
    )
    print()
    print("Where the cold cycle spends its time (ms, medians of the runs):")
    print(f"{'phase':<22}{'wall':>8}" + "".join(f"{k:>8}" for k in EXTERNAL) + f"{'overseer':>10}")
    own_total = []
    rows = {p: [] for p in [*PHASES, "outside phases"]}
    for run in breakdown:
        inside = 0.0
        own_run = 0.0
        for phase in PHASES:
            duration, external = run["phases"].get(phase, (0.0, {}))
            wall = duration * 1000
            inside += wall
            parts = [external.get(k, 0.0) for k in EXTERNAL]
            own = max(0.0, wall - sum(external.values()))
            own_run += own
            rows[phase].append([wall, *parts, own])
        outside = run["wall"] * 1000 - inside  # process start, imports, recovery, the report
        own_run += outside
        rows["outside phases"].append([outside, 0.0, 0.0, 0.0, outside])
        own_total.append(own_run)
    for phase, values in rows.items():
        cols = [statistics.median(c) for c in zip(*values, strict=True)]
        print(f"{phase:<22}" + "".join(f"{c:>8.0f}" for c in cols[:-1]) + f"{cols[-1]:>10.0f}")
    own = statistics.median(own_total)
    record("supervisor's own share, cold", f"{own:.0f} ms of {med['cold'] * 1000:.0f} ms")
    print(
        f"supervisor's own share: {own:.0f} ms of {med['cold'] * 1000:.0f} ms "
        f"({100 * own / (med['cold'] * 1000):.1f} %)"
    )


if __name__ == "__main__":
    main()
