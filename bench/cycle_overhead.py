"""One overseer cycle against the careful hand pipeline for the same work (issue 18).

    .venv/bin/python bench/cycle_overhead.py [--runs 5] [--project SPEC_OR_PATH ...]
                                             [--concurrently auto|true|false]

The targets are real projects nobody here wrote, of different suite sizes: by default the
source distributions (with their tests) of pyflakes 4.1.0 (~800 tests) and boltons 26.2.0
(~500 slower ones), downloaded from PyPI by this script, checked against their sha256 and
cached (it says what it fetched, and from where); or `--project PATH`, any checkout. Each is
committed into a scratch repository; nothing of it is kept in this repository. Each run starts
from a new commit on top of the release (so nothing about it is cached yet) and times, on that
commit, in an order that alternates from run to run:

- the hand pipeline: the test command, `ruff check --fix` of the rule in the file overseer
  chose, the test command again, `git commit`;
- a cycle of the running daemon (`overseer run-now`, until its CycleFinished event), cold (the
  first cycle on the commit: the baseline's tests run) and warm (a second cycle on the same
  HEAD: the baseline is cached, so only the candidate's tests run);
- `overseer run --once`, the cron-style command, cold, which also pays for starting Python
  and importing overseer.

Every cycle uses the ruff fixer, needs no approval and promotes its change to the branch; the
baseline's and the candidate's tests run at once when `evaluate_concurrently` (auto: decided
per cycle by the machine; the decisions are printed) allows. Ratios are overseer / hand
pipeline, paired run by run, medians of the runs. Goals (issue 18): daemon cold <= 0.8, warm
<= 0.6, run --once cold <= 1.1. Where each kind of cycle spends its time comes from its recorded
phase events (duration and the external programs' share, `external_ms`); the supervisor's own
share is everything that is not the target's tests, ruff or git, including the time outside
any phase (for `run --once`: the interpreter's start-up and imports).

The post-promotion watch (which runs the tests a third time) is off, as the hand pipeline has
nothing like it; its cost is that one more test run.
"""

from __future__ import annotations

import argparse
import asyncio
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

from overseer.client import Client
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
        source = f"from the cache, {cached}"
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
        source = f"fetched from PyPI ({sdist['url']}) into {cached}"
    digest = hashlib.sha256(data).hexdigest()
    expected = KNOWN.get(spec)
    if expected is None:
        print(f"note: {spec} is not a known sdist; its sha256 is {digest}")
    elif digest != expected:
        cached.unlink()
        raise SystemExit(f"{spec}: sha256 {digest} is not the expected {expected}")
    print(
        f"{name} {version}: the source distribution, {len(data):,} bytes, {source}; sha256 {digest}"
    )
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


def scratch_repo(project: str, cache: Path, where: Path) -> Path:
    """The project committed into a new repository under `where`: a known sdist (NAME==VERSION,
    from PyPI or the cache) or a checkout at a path (its files as they are, without its .git)."""
    where.mkdir(parents=True)
    checkout = Path(project).expanduser()
    if "==" not in project and checkout.is_dir():
        tree = where / checkout.resolve().name
        shutil.copytree(checkout, tree, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        print(f"{project}: a checkout, copied as it is ({tree.name})")
    else:
        with tarfile.open(fileobj=io.BytesIO(fetch(project, cache))) as tar:
            tar.extractall(where, filter="data")
        [tree] = [p for p in where.iterdir() if p.is_dir()]
    git(tree, "init", "-q", "-b", "main")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", f"{tree.name} as released")
    return tree


def reset(repo: Path, commit: str) -> None:
    """Back to the released commit: no overseer branch, worktree or commit left."""
    git(repo, "reset", "-q", "--hard", commit)
    git(repo, "worktree", "prune")
    for branch in git(repo, "branch", "--format=%(refname:short)", "--list", "overseer/*").split():
        git(repo, "branch", "-q", "-D", branch)


def write_config(
    work: Path, repo: Path, name: str, test_command: str, concurrently: bool | str
) -> Path:
    policy = work / "policy.yaml"
    policy.write_text(
        "version: 1\nautonomy: limited\nareas: [quality]\n"
        "limits: {per_hour: 100000, per_day: 100000, circuit_breaker: 0}\n"
    )
    config = work / f"overseer-{name}.yaml"
    config.write_text(
        json.dumps(
            {
                "state_dir": str(work / f"state-{name}"),
                "policy": str(policy),
                "schedule": {"every": "24h"},  # the daemon's cycles are the benchmark's run-now
                "defaults": {"dry_run": False, "require_approval": False},
                "targets": [
                    {
                        "path": str(repo),
                        "test_command": test_command,
                        "watch_after_promotion": False,
                        "evaluate_concurrently": concurrently,
                    }
                ],
            }
        )
    )
    return config


def run_once(config: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        [*OVERSEER, "run", "--once", "--config", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, **IDENTITY},
    )
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"overseer run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return took


class Daemon:
    """`overseer daemon` as a service runs it; a cycle is `run-now` until CycleFinished."""

    def __init__(self, config: Path, socket: Path) -> None:
        self.socket = socket
        env = {**os.environ, **IDENTITY, "OVERSEER_SOCKET": str(socket)}
        self.proc = subprocess.Popen(
            [*OVERSEER, "daemon", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon did not start: {self.proc.stderr.read()}")
            time.sleep(0.05)

    def cycle(self) -> float:
        return asyncio.run(self._cycle())

    async def _cycle(self) -> float:
        async with Client(self.socket, name="bench") as client:
            await client.request("subscribe")
            started = time.perf_counter()
            await client.request("run_now")
            async for event in client.events():
                if event["kind"] == "CycleFinished":
                    return time.perf_counter() - started
        raise SystemExit(f"the daemon went away: {self.proc.stderr.read()}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


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
    # Whether the baseline's and the candidate's tests ran at once, and why.
    row["concurrency"] = (json.loads(row["evaluation"] or "{}").get("concurrency")) or (
        json.loads(row["analysis_results"] or "{}").get("concurrency") or {}
    )
    row["phases"] = {
        e["phase"]: (e["duration"], json.loads(e["detail"] or "{}").get("external_ms", {}))
        for e in events
    }
    return row


def shell_pipeline(repo: Path, test_command: str, rule: str, file: str) -> tuple[float, dict]:
    """The careful cron job: tests, ruff's fix, tests again, commit — with `&&`/`;` as a shell
    script would chain them. Each step is its own `sh -c` so that it can be timed (a shell
    start-up each, ~1 ms); returns the total and the seconds of each step."""
    steps = [
        ("tests", f"{test_command} >/dev/null"),
        ("ruff", f"{RUFF} check --no-cache --quiet --fix --select {rule} {file}"),
        ("tests again", f"{test_command} >/dev/null"),
        ("git", f"git commit -q -a -m 'fix {rule} in {file}'"),
    ]
    before = git(repo, "rev-parse", "HEAD")
    took: dict[str, float] = {}
    env = {**os.environ, **IDENTITY}
    for name, script in steps:
        started = time.perf_counter()
        proc = subprocess.run(["/bin/sh", "-c", script], cwd=repo, env=env)
        took[name] = time.perf_counter() - started
        # The first run's tests must pass and the commit must succeed; ruff exits 0 after
        # fixing everything it could (the script goes on either way, as `;` would).
        if proc.returncode != 0 and name != "ruff":
            raise SystemExit(f"the shell pipeline's {name} failed (exit {proc.returncode})")
    if git(repo, "rev-parse", "HEAD") == before:
        raise SystemExit("the shell pipeline did not commit")
    return sum(took.values()), took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--project",
        action="append",
        help="NAME==VERSION of a known sdist, or the path of a checkout; repeatable "
        f"(default: {' and '.join(PROJECTS)})",
    )
    parser.add_argument(
        "--concurrently",
        choices=["auto", "true", "false"],
        default="auto",
        help="the targets' evaluate_concurrently (default auto, as configured by default)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "overseer-bench",
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    concurrently = {"true": True, "false": False}.get(args.concurrently, "auto")
    # The same interpreter (which has pytest) for the hand pipeline and overseer; no plugins a
    # developer happened to install into it, as in the target's own environment.
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    # Compiled modules cached as an installed package has them (for both sides), not compiled
    # again at every start as with PYTHONDONTWRITEBYTECODE.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.setdefault("PYTHONPYCACHEPREFIX", str(args.cache / "pycache"))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {platform.platform()}; load average at the start "
        f"{os.getloadavg()[0]:.2f} (a busy machine makes every figure noisier)"
    )
    results = []
    for project in args.project or PROJECTS:
        work = Path(tempfile.mkdtemp(prefix="overseer-cycle-bench-"))
        sockdir = Path(tempfile.mkdtemp(prefix="ovc", dir="/tmp"))  # socket paths must be short
        try:
            repo = scratch_repo(project, args.cache, work / "src")
            results.append(measure(project, repo, work, sockdir / "d.sock", args, concurrently))
        finally:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(sockdir, ignore_errors=True)
    summary(results, args.runs)


PROJECTS = ("pyflakes==4.1.0", "boltons==26.2.0")
VARIANTS = ("shell", "daemon cold", "daemon warm", "once cold")
GOALS = {"daemon cold": 0.8, "daemon warm": 0.6, "once cold": 1.1}
# Every overseer variant: its phases are read from the history and shown.
CYCLES = VARIANTS[1:]


def measure(
    project: str,
    repo: Path,
    work: Path,
    socket: Path,
    args: argparse.Namespace,
    concurrently: bool | str,
) -> dict:
    """One project's paired runs; prints its report and returns its ratios."""
    released = git(repo, "rev-parse", "HEAD")
    # run --once on a clone of its own: a repository is supervised from one state directory
    # (the daemon's here), and its cold cycles must not find what the daemon's cached.
    clone = work / "once" / repo.name
    git(work, "clone", "-q", "-b", "main", str(repo), str(clone))
    test_command = f"{sys.executable} -m pytest -q -p no:cacheprovider"
    once_config = write_config(work, clone, "once", test_command, concurrently)
    daemon = Daemon(write_config(work, repo, "daemon", test_command, concurrently), socket)
    try:
        timings: dict[str, list[float]] = {v: [] for v in VARIANTS}
        breakdown: dict[str, list[dict]] = {v: [] for v in CYCLES}
        decisions: dict[str, list[dict]] = {v: [] for v in CYCLES}
        chosen: tuple[str, str] | None = None
        shell_steps: list[dict[str, float]] = []
        tests = ""
        for i in range(args.runs + 1):  # the first run warms the page cache, untimed
            commits = {}
            for tree in (repo, clone):
                reset(tree, released)
                git(tree, "commit", "-q", "--allow-empty", "-m", f"run {i}")  # nothing cached
                commits[tree] = git(tree, "rev-parse", "HEAD")
            # Alternating order, so that neither side always runs on a machine the other warmed.
            order = [*VARIANTS[1:], "shell"] if i % 2 == 0 else list(VARIANTS)
            for variant in order:
                where = clone if variant == "once cold" else repo
                commit = commits[where]
                reset(where, commit)
                if variant == "shell":
                    if chosen is None:
                        continue  # known after overseer's first cycle
                    took, steps = shell_pipeline(repo, test_command, *chosen)
                    if i > 0:
                        shell_steps.append(steps)
                else:
                    took = daemon.cycle() if variant.startswith("daemon") else run_once(once_config)
                    state = work / f"state-{variant.split()[0]}"
                    attempt = last_attempt(state)
                    if attempt["status"] != "promoted" or attempt["base_commit"] != commit:
                        raise SystemExit(
                            f"{project}, {variant} run {i}: {attempt['status']} on "
                            f"{attempt['base_commit']}, expected a promotion on {commit} "
                            f"({attempt.get('failure_reason')})"
                        )
                    chosen = chosen or (attempt["finding_kind"], attempt["target_file"])
                    tests = f"{attempt['tests_passed']} passed, {attempt['tests_skipped']} skipped"
                    if i > 0:
                        breakdown[variant].append({"wall": took, "phases": attempt["phases"]})
                        decisions[variant].append(attempt["concurrency"])
                if i > 0:
                    timings[variant].append(took)
    finally:
        daemon.stop()
    assert chosen is not None
    return report(project, args, timings, breakdown, decisions, chosen, tests, shell_steps)


def report(project, args, timings, breakdown, decisions, chosen, tests, shell_steps) -> dict:  # type: ignore[no-untyped-def]
    med = {k: statistics.median(v) for k, v in timings.items()}
    # Paired: each run's ratio against the hand pipeline of the same run, then the median.
    ratios = {
        v: statistics.median(t / s for t, s in zip(timings[v], timings["shell"], strict=True))
        for v in VARIANTS[1:]
    }
    rule, file = chosen
    print()
    print(f"cycle_overhead: {project} ({tests}); the rule chosen: {rule} in {file}")
    print(f"{'':<22}{'seconds':>9}{'ratio':>8}{'goal':>8}   (medians of {args.runs} paired runs)")
    print(f"{'hand pipeline':<22}{med['shell']:>9.2f}")
    for variant in VARIANTS[1:]:
        goal = GOALS[variant]
        verdict = "met" if ratios[variant] <= goal else "MISSED"
        name = variant.replace("once", "run --once")
        print(
            f"{name:<22}{med[variant]:>9.2f}{ratios[variant]:>8.2f}{'≤ ' + str(goal):>8}  {verdict}"
        )
    print(
        "  (all runs, s: "
        + "; ".join(f"{k} " + " ".join(f"{t:.2f}" for t in v) for k, v in timings.items())
        + ")"
    )
    for variant, seen in decisions.items():
        at_once = sum(1 for d in seen if d.get("concurrent"))
        reasons = sorted({str(d.get("reason")) for d in seen if not d.get("concurrent")})
        print(
            f"{variant.replace('once', 'run --once')}: the two test runs at once in "
            f"{at_once} of {len(seen)} runs"
            + (f"; otherwise: {' | '.join(reasons)}" if reasons else "")
        )
    print()
    print("The hand pipeline's steps (ms, medians of the runs):")
    for step in shell_steps[0]:
        print(f"{step:<16}{statistics.median(s[step] for s in shell_steps) * 1000:>8.0f}")
    shell_tests = statistics.median(s["tests"] + s["tests again"] for s in shell_steps) * 1000
    for variant, runs in breakdown.items():
        name = variant.replace("once", "run --once")
        print()
        print(f"Where a {name} cycle spends its time (ms, medians of the runs):")
        print(
            f"{'phase':<16}{'wall':>8}" + "".join(f"{k:>8}" for k in EXTERNAL) + f"{'overseer':>10}"
        )
        own_total = []
        rows: dict[str, list[list[float]]] = {p: [] for p in [*PHASES, "outside phases"]}
        for one in runs:
            inside = own_run = 0.0
            for phase in PHASES:
                duration, external = one["phases"].get(phase, (0.0, {}))
                wall = duration * 1000
                inside += wall
                own = max(0.0, wall - sum(external.values()))
                own_run += own
                rows[phase].append([wall, *(external.get(k, 0.0) for k in EXTERNAL), own])
            outside = one["wall"] * 1000 - inside
            own_run += outside
            rows["outside phases"].append([outside, 0.0, 0.0, 0.0, outside])
            own_total.append(own_run)
        for phase, values in rows.items():
            cols = [statistics.median(c) for c in zip(*values, strict=True)]
            print(f"{phase:<16}" + "".join(f"{c:>8.0f}" for c in cols[:-1]) + f"{cols[-1]:>10.0f}")
        own, wall = statistics.median(own_total), med[variant] * 1000
        print(
            f"the supervisor's own share: {own:.0f} ms of {wall:.0f} ms ({100 * own / wall:.1f} %)"
        )
        spent = statistics.median(
            sum(one["phases"].get(p, (0.0, {}))[1].get("tests", 0.0) for p in PHASES)
            for one in runs
        )
        print(
            f"the cycle's wait on its test runs (two at once counted once): {spent:.0f} ms; "
            f"the hand pipeline's two: {shell_tests:.0f} ms ({spent / shell_tests:.2f}×)"
        )
    return {"project": project, "ratios": ratios}


def summary(results: list[dict], runs: int) -> None:
    """One line per goal and project, for the closing table of `make bench`."""
    print()
    print(f"Ratios to the hand pipeline (medians of {runs} paired runs):")
    for variant, goal in GOALS.items():
        name = variant.replace("once", "run --once")
        cells = []
        for result in results:
            ratio = result["ratios"][variant]
            cells.append(f"{result['project']} {ratio:.2f}")
            record(
                f"{name} / hand pipeline, {result['project']}",
                f"{ratio:.2f}",
                f"≤ {goal}",
                ratio <= goal,
            )
        print(f"  {name:<18} goal ≤ {goal}: " + ", ".join(cells))


if __name__ == "__main__":
    main()
