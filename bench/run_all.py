"""Every benchmark in turn, then one table of their headline figures: `make bench`.

    .venv/bin/python bench/run_all.py [NAME ...]

Each benchmark's own output is shown as it runs. The table at the end says, for each figure
with a target, whether it was met on this machine; the exit status is non-zero only when a
benchmark failed to run (a missed target is a finding to report, not a crash).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    "cycle_overhead",
    "load_bench",
    "daemon_bench",
    "fleet_bench",
    "import_time",
    "client_memory",
    "tui_bench",
    "safety_corpus",
    "llm_bench",
    "predictor_bench",
    "generation_funnel",
]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}; Python {platform.python_version()}; "
        f"{platform.system()} {platform.release()}"
    )


def main() -> int:
    names = sys.argv[1:] or BENCHES
    unknown = [n for n in names if not (HERE / f"{n}.py").exists()]
    if unknown:
        print(f"no such benchmark: {', '.join(unknown)} (known: {', '.join(BENCHES)})")
        return 2
    failed = []
    with tempfile.NamedTemporaryFile(prefix="overseer-bench-", suffix=".jsonl") as summary:
        env = {**os.environ, "OVERSEER_BENCH_SUMMARY": summary.name}
        for name in names:
            print(f"\n=== {name} " + "=" * (60 - len(name)), flush=True)
            started = time.monotonic()
            code = subprocess.call([sys.executable, str(HERE / f"{name}.py")], env=env)
            print(f"--- {name}: {time.monotonic() - started:.0f} s, exit {code}", flush=True)
            if code != 0:
                failed.append(name)
        rows = [json.loads(line) for line in Path(summary.name).read_text().splitlines()]
    print(f"\nSummary — {time.strftime('%Y-%m-%d')} on {machine()}")
    widths = [max([len(r[k]) for r in rows] + [len(k)]) for k in ("bench", "measure", "figure")]
    head = ("bench", "measure", "figure")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + "  target")
    for r in rows:
        verdict = {True: "  met", False: "  MISSED", None: ""}[r["met"]]
        cells = (r["bench"], r["measure"], r["figure"])
        line = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
        print(f"{line}  {r['target']}{verdict}".rstrip())
    if failed:
        print(f"\nfailed to run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
