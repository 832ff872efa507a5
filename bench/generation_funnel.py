"""The funnel of new tests that prove themselves (issue 17), on a scripted model over three
small real repositories.

    .venv/bin/python bench/generation_funnel.py [--runs 3]

Three packages are made in a temporary directory (`geo` and `money` in a src layout, `textkit`
flat), each a git repository with six modules of which the existing tests run only one function:
six `uncovered_code` findings each. Real `overseer run --once` cycles (the CLI, a child process
each, `new_tests.enabled: true`, autonomy full) run on the three targets until every finding is
decided; the `llm` generator talks to the tests' scripted OpenAI-compatible server, which answers
each prompt by the module it names with one kind of candidate, a different module for each kind
in each repository:

- good: a new test file that runs the uncovered function and asserts what it returns;
- broken: imports a name the module does not have, so pytest collects nothing;
- flaky: passes on its first runs, then fails (a run count kept in a file it writes);
- no gain: passes every time and asserts, but runs only what the existing tests run already;
- asserts nothing: runs the uncovered lines and checks nothing;
- edits a test: the good new file plus an edit to the existing test file.

Then the funnel per generator from `overseer stats --json` (`new_tests`): generated → collected
→ passed reliably → raised coverage → approved → kept, and denied by SAFETY, per repository and
in total. Each bad kind must drop at its own stage: asserts nothing and edits a test are denied
by SAFETY (never reach EVALUATE), broken is not collected, flaky is not reliable, no gain raises
no coverage; only good is kept. So each repository should show 6 → 3 → 2 → 1 → 1 → 1 with
2 denied by SAFETY (collected: good, flaky, no gain; reliable: good, no gain).
`--runs` is `reliability_runs` (3 by default here, 5 in overseer's default): fewer runs, a
shorter benchmark; the flaky test fails on its second proving run whatever the count.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from summary import record  # noqa: E402
from support.chat_server import Answer, ChatServer  # noqa: E402
from support.helpers import init_repo, overseer  # noqa: E402

FUNNEL = ("generated", "collected", "reliable", "raised_coverage", "approved", "kept")
TITLES = ("generated", "collected", "reliably", "raised", "approved", "kept", "denied")
KINDS = ("good", "broken", "flaky", "no gain", "asserts nothing", "edits a test")
EXPECTED = {  # what each kind of candidate should end as
    "good": "promoted",
    "broken": "failed",
    "flaky": "failed",
    "no gain": "failed",
    "asserts nothing": "denied",
    "edits a test": "denied",
}

# Each module: its source, a call the existing tests make (and its value), and a call of the
# function no test runs (and its value).
REPOS: dict[str, dict[str, tuple[str, tuple[str, object], tuple[str, object]]]] = {
    "geo": {
        "shapes": (
            "def area(w, h):\n    return w * h\n\n\n"
            "def describe(w, h):\n    if w == h:\n        return 'square'\n"
            "    if w > h:\n        return 'wide'\n    return 'tall'\n",
            ("area(2, 3)", 6),
            ("describe(3, 1)", "wide"),
        ),
        "angles": (
            "def turn(a, b):\n    return (a + b) % 360\n\n\n"
            "def opposite(a):\n    a = a % 360\n    if a < 180:\n        return a + 180\n"
            "    return a - 180\n",
            ("turn(350, 20)", 10),
            ("opposite(200)", 20),
        ),
        "grid": (
            "def cell(x, y, size):\n    return (x // size, y // size)\n\n\n"
            "def neighbours(x, y):\n    out = []\n    for dx in (-1, 0, 1):\n"
            "        for dy in (-1, 0, 1):\n            if dx or dy:\n"
            "                out.append((x + dx, y + dy))\n    return out\n",
            ("cell(7, 9, 4)", (1, 2)),
            ("neighbours(0, 0)[0]", (-1, -1)),
        ),
        "scale": (
            "def double(p):\n    return (p[0] * 2, p[1] * 2)\n\n\n"
            "def fit(p, limit):\n    biggest = max(abs(p[0]), abs(p[1]))\n"
            "    if biggest <= limit:\n        return p\n    k = limit / biggest\n"
            "    return (p[0] * k, p[1] * k)\n",
            ("double((1, 2))", (2, 4)),
            ("fit((4, 2), 2)", (2.0, 1.0)),
        ),
        "bounds": (
            "def width(box):\n    return box[2] - box[0]\n\n\n"
            "def union(a, b):\n    x0 = min(a[0], b[0])\n    y0 = min(a[1], b[1])\n"
            "    x1 = max(a[2], b[2])\n    y1 = max(a[3], b[3])\n    return (x0, y0, x1, y1)\n",
            ("width((1, 0, 4, 2))", 3),
            ("union((0, 0, 1, 1), (2, -1, 3, 0))", (0, -1, 3, 1)),
        ),
        "polygon": (
            "def sides(name):\n    return {'triangle': 3, 'square': 4}.get(name, 0)\n\n\n"
            "def perimeter(points):\n    total = 0.0\n    for i, p in enumerate(points):\n"
            "        q = points[(i + 1) % len(points)]\n"
            "        total += ((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2) ** 0.5\n    return total\n",
            ("sides('square')", 4),
            ("perimeter([(0, 0), (3, 0), (3, 4)])", 12.0),
        ),
    },
    "textkit": {
        "slug": (
            "def lower(s):\n    return s.lower()\n\n\n"
            "def slugify(s):\n    out = []\n    for ch in s.lower():\n"
            "        if ch.isalnum():\n            out.append(ch)\n        elif out and out[-1] != '-':\n"
            "            out.append('-')\n    return ''.join(out).strip('-')\n",
            ("lower('AbC')", "abc"),
            ("slugify('Hello, World!')", "hello-world"),
        ),
        "case": (
            "def shout(s):\n    return s.upper() + '!'\n\n\n"
            "def snake(s):\n    out = ''\n    for ch in s:\n        if ch.isupper() and out:\n"
            "            out += '_'\n        out += ch.lower()\n    return out\n",
            ("shout('hi')", "HI!"),
            ("snake('HelloWorld')", "hello_world"),
        ),
        "wrap": (
            "def first_line(s):\n    return s.split('\\n')[0]\n\n\n"
            "def wrap(s, width):\n    lines, line = [], ''\n    for word in s.split():\n"
            "        if line and len(line) + 1 + len(word) > width:\n            lines.append(line)\n"
            "            line = word\n        else:\n            line = f'{line} {word}'.strip()\n"
            "    return lines + [line]\n",
            ("first_line('a\\nb')", "a"),
            ("wrap('aa bb cc', 5)", ["aa bb", "cc"]),
        ),
        "count": (
            "def words(s):\n    return len(s.split())\n\n\n"
            "def frequencies(s):\n    seen = {}\n    for w in s.lower().split():\n"
            "        seen[w] = seen.get(w, 0) + 1\n    return seen\n",
            ("words('a b c')", 3),
            ("frequencies('a B b')", {"a": 1, "b": 2}),
        ),
        "pad": (
            "def left(s, n):\n    return s.rjust(n)\n\n\n"
            "def centre(s, n, fill='*'):\n    extra = n - len(s)\n    if extra <= 0:\n"
            "        return s\n    before = extra // 2\n    return fill * before + s + fill * (extra - before)\n",
            ("left('a', 3)", "  a"),
            ("centre('ab', 5)", "*ab**"),
        ),
        "vowels": (
            "def has_vowel(s):\n    return any(c in 'aeiou' for c in s.lower())\n\n\n"
            "def strip_vowels(s):\n    kept = [c for c in s if c.lower() not in 'aeiou']\n"
            "    return ''.join(kept)\n",
            ("has_vowel('xyz')", False),
            ("strip_vowels('Banana')", "Bnn"),
        ),
    },
    "money": {
        "rounding": (
            "def cents(amount):\n    return round(amount * 100)\n\n\n"
            "def to_nickel(c):\n    rest = c % 5\n    if rest < 3:\n        return c - rest\n"
            "    return c + 5 - rest\n",
            ("cents(1.25)", 125),
            ("to_nickel(103)", 105),
        ),
        "tax": (
            "def gross(net, rate):\n    return net + net * rate // 100\n\n\n"
            "def bracket(income):\n    if income < 1000:\n        return 0\n"
            "    if income < 5000:\n        return 10\n    return 20\n",
            ("gross(200, 10)", 220),
            ("bracket(3000)", 10),
        ),
        "split": (
            "def even(total, n):\n    return total // n\n\n\n"
            "def shares(total, n):\n    base, rest = divmod(total, n)\n"
            "    return [base + 1 if i < rest else base for i in range(n)]\n",
            ("even(10, 3)", 3),
            ("shares(10, 3)", [4, 3, 3]),
        ),
        "discount": (
            "def percent_off(c, p):\n    return c - c * p // 100\n\n\n"
            "def best(c, offers):\n    prices = [c]\n    for off in offers:\n"
            "        prices.append(max(0, c - off))\n    return min(prices)\n",
            ("percent_off(200, 25)", 150),
            ("best(100, [10, 30])", 70),
        ),
        "fx": (
            "def convert(c, rate):\n    return round(c * rate)\n\n\n"
            "def cross(a_to_usd, b_to_usd):\n    if b_to_usd == 0:\n"
            "        raise ValueError('no rate')\n    return a_to_usd / b_to_usd\n",
            ("convert(100, 1.5)", 150),
            ("cross(2.0, 4.0)", 0.5),
        ),
        "format": (
            "def plain(c):\n    return str(c)\n\n\n"
            "def pretty(c):\n    sign = '-' if c < 0 else ''\n    c = abs(c)\n"
            "    return f'{sign}{c // 100}.{c % 100:02d}'\n",
            ("plain(5)", "5"),
            ("pretty(-1234)", "-12.34"),
        ),
    },
}
FLAT = {"textkit"}  # the others keep their package under src/


def module_path(pkg: str, mod: str) -> str:
    return f"{pkg}/{mod}.py" if pkg in FLAT else f"src/{pkg}/{mod}.py"


def existing_test(pkg: str) -> str:
    mods = REPOS[pkg]
    out = "".join(f"from {pkg} import {mod}\n" for mod in mods)
    for mod, (_, (call, value), _) in mods.items():
        out += f"\n\ndef test_{mod}():\n    assert {mod}.{call} == {value!r}\n"
    return out


def repo_files(pkg: str) -> dict[str, str]:
    files = {
        "pyproject.toml": f"[project]\nname = '{pkg}'\nversion = '0'\n",
        module_path(pkg, "__init__"): "",
        f"tests/test_{pkg}.py": existing_test(pkg),
        ".gitignore": "__pycache__/\n.runs\n",
    }
    for mod, (source, _, _) in REPOS[pkg].items():
        files[module_path(pkg, mod)] = f'"""{pkg}.{mod}."""\n\n\n' + source
    return files


def candidate(kind: str, pkg: str, mod: str) -> list[dict[str, str]]:
    """The edits of one kind of candidate for the module's finding."""
    _, (call, value), (ucall, uvalue) = REPOS[pkg][mod]
    head = f"from {pkg} import {mod}\n\n\n"
    test = f"def test_{mod}_uncovered():\n"
    if kind in ("good", "edits a test"):
        text = head + test + f"    assert {mod}.{ucall} == {uvalue!r}\n"
    elif kind == "broken":
        text = f"from {pkg}.{mod} import no_such_function\n\n\n" + test
        text += "    assert no_such_function() is None\n"
    elif kind == "flaky":  # the suite's run is the first; the third run in all fails
        text = "from pathlib import Path\n\n" + head
        text += "COUNT = Path(__file__).parent / '.runs'\n\n\n" + test
        text += "    n = int(COUNT.read_text()) if COUNT.exists() else 0\n"
        text += "    COUNT.write_text(str(n + 1))\n"
        text += f"    assert {mod}.{ucall} == {uvalue!r}\n    assert n % 4 != 2\n"
    elif kind == "no gain":
        text = head + f"def test_{mod}_again():\n    assert {mod}.{call} == {value!r}\n"
    else:  # asserts nothing
        text = head + test + f"    {mod}.{ucall}\n"
    edits = [{"file": f"tests/test_{mod}_coverage.py", "search": "", "replace": text}]
    if kind == "edits a test":
        line = f"    assert {mod}.{call} == {value!r}\n"
        edits.append(
            {
                "file": f"tests/test_{pkg}.py",
                "search": line,
                "replace": line + f"    assert {mod}.{ucall} == {uvalue!r}\n",
            }
        )
    return edits


class Script:
    """The scripted model: answers each prompt by the module its finding names (the server
    takes `answers.pop(0)` after recording the request)."""

    def __init__(self, server_requests: list[dict], plan: dict[str, tuple[str, str, str]]):
        self.requests = server_requests
        self.plan = plan  # module path -> (kind, package, module)
        self.asked: list[str] = []

    def __bool__(self) -> bool:
        return True

    def pop(self, _index: int) -> Answer:
        prompt = self.requests[-1]["messages"][-1]["content"]
        found = re.search(r"Finding: uncovered_code in (\S+?):", prompt)
        if not found or found.group(1) not in self.plan:
            return Answer(status=500, body=b'{"error": "not a scripted prompt"}')
        path = found.group(1)
        self.asked.append(path)
        kind, pkg, mod = self.plan[path]
        reply = {
            "target_file": f"tests/test_{mod}_coverage.py",
            "change_type": "quality",
            "risk_level": "low",
            "impact": f"{pkg}.{mod} is tested",
            "rationale": "no test ran these lines",
            "edits": candidate(kind, pkg, mod),
        }
        return Answer(json.dumps(reply))


def cli(*args: str, timeout: float = 300) -> str:
    proc = overseer(*args, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"overseer {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def row(name: str, f: dict[str, int]) -> str:
    cells = [str(f.get(k, 0)) for k in (*FUNNEL, "denied")]
    return f"  {name:<16}" + "".join(
        c.rjust(w + 2) for c, w in zip(cells, map(len, TITLES), strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="reliability_runs (overseer: 5)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="overseer-funnel-"))
    try:
        run(work, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_repo(work: Path, pkg: str, runs: int, policy: Path) -> dict:
    """Cycles on one repository, its own state directory and scripted server, until each of its
    findings has been answered once; what each candidate ended as and the funnel."""
    repo = init_repo(work / pkg, repo_files(pkg))
    i = list(REPOS).index(pkg)
    plan = {  # each repository its own kind for each module
        module_path(pkg, mod): (KINDS[(j + 2 * i) % len(KINDS)], pkg, mod)
        for j, mod in enumerate(REPOS[pkg])
    }
    server = ChatServer()
    script = Script(server.requests, plan)
    server.answers = script  # type: ignore[assignment]
    state = str(work / f"state-{pkg}")
    config = work / f"overseer-{pkg}.yaml"
    cycles = 0
    with server:
        llm = server.generator(timeout=10, retries=0, repair_rounds=0)
        target = {
            "name": pkg,
            "path": str(repo),
            "ruff_select": ["F"],
            "flaky_reruns": 1,
            "watch_after_promotion": False,
            "new_tests": {"enabled": True, "reliability_runs": runs},
        }
        config.write_text(
            json.dumps(
                {
                    "state_dir": state,
                    "policy": str(policy),
                    "defaults": {"dry_run": False, "require_approval": False},
                    "generators": [llm],
                    "targets": [target],
                }
            )
        )
        # One finding a cycle: a cycle per module, and a few more if one went unasked.
        while len(set(script.asked)) < len(plan) and cycles < len(plan) + 2:
            cli("run", "--once", "--config", str(config), "--area", "quality")
            cycles += 1
    ended = []
    by_file = {f"tests/test_{mod}_coverage.py": kind for kind, _, mod in plan.values()}
    for a in json.loads(cli("history", "--json", "--limit", "1000", "--state-dir", state)):
        if a.get("finding_kind") == "uncovered_code":
            reason = (a.get("failure_reason") or "").split("\n")[0]
            ended.append((by_file.get(a.get("target_file"), "?"), a["status"], reason))
    data = json.loads(cli("stats", "--json", "--state-dir", state))
    return {
        "cycles": cycles,
        "asked": len(script.asked),
        "ended": ended,
        "funnel": data["new_tests"],
    }


def run(work: Path, runs: int) -> None:
    policy = work / "policy.yaml"
    # Refusals in a row would pause a target or make the next change wait for a person (its
    # predicted success low): not what is measured here.
    policy.write_text(
        "version: 1\nautonomy: full\nlimits: {per_hour: 1000, per_day: 1000, circuit_breaker: 0}\n"
        "success: {medium_below: 0, high_below: 0, approval_below: 0}\n"
    )
    started = time.monotonic()
    # The repositories side by side (each its own state directory and server), as a daemon
    # with several targets would not, but the figures are per repository either way.
    with ThreadPoolExecutor(len(REPOS)) as pool:
        futures = {pkg: pool.submit(run_repo, work, pkg, runs, policy) for pkg in REPOS}
        results = {pkg: f.result() for pkg, f in futures.items()}
    seconds = time.monotonic() - started
    cycles = sum(r["cycles"] for r in results.values())
    asked = sum(r["asked"] for r in results.values())
    findings = sum(len(mods) for mods in REPOS.values())
    wrong = [
        f"{pkg}: {kind} ended {status} ({reason})"
        for pkg, r in results.items()
        for kind, status, reason in r["ended"]
        if EXPECTED.get(kind) != status
    ]
    print(
        f"{len(REPOS)} repositories, {findings} uncovered_code findings, {cycles} `run --once` "
        f"cycles ({asked} prompts answered), reliability_runs {runs}: {seconds:.0f} s"
    )
    print("\nEach kind of candidate ended as (the first line of its reason):")
    for kind in KINDS:
        seen = sorted(
            {
                (reason if reason.startswith(status) else f"{status}: {reason}".rstrip(": "))[:110]
                for r in results.values()
                for k, status, reason in r["ended"]
                if k == kind
            }
        )
        print(f"  {kind:<16} " + ("\n" + " " * 19).join(seen or ["never asked"]))
    print("\nNew tests, per generator (`overseer stats --json`, key new_tests)")
    print(f"  {'':<16}" + "".join(t.rjust(len(t) + 2) for t in TITLES))
    total: dict[str, int] = {}
    for pkg, r in results.items():
        for generator, f in r["funnel"].items():
            print(row(f"{pkg} · {generator}", f))
            if generator == "llm":
                total = {k: total.get(k, 0) + v for k, v in f.items()}
    print(row("total · llm", total))
    expected = {
        "generated": 6 * len(REPOS),
        "collected": 3 * len(REPOS),
        "reliable": 2 * len(REPOS),
        "raised_coverage": len(REPOS),
        "approved": len(REPOS),
        "kept": len(REPOS),
        "denied": 2 * len(REPOS),
    }
    funnel = " → ".join(str(total.get(k, 0)) for k in FUNNEL)
    as_expected = not wrong and all(total.get(k) == v for k, v in expected.items())
    print(
        f"\nas expected ({' → '.join(str(expected[k]) for k in FUNNEL)}, "
        f"{expected['denied']} denied): {'yes' if as_expected else 'NO'}"
    )
    for line in wrong:
        print(f"  {line}")
    record(
        "new tests funnel (generated → … → kept)",
        f"{funnel} · {total.get('denied', 0)} denied",
        " → ".join(str(expected[k]) for k in FUNNEL),
        as_expected,
    )
    record(f"{cycles} cycles on {len(REPOS)} repositories", f"{seconds:.0f} s")


if __name__ == "__main__":
    main()
