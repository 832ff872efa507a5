"""The headline figures of each benchmark, collected for `make bench`'s closing table.

A benchmark calls `record(...)` for each figure that has a target (or that the README quotes);
`bench/run_all.py` names the file they go to in OVERSEER_BENCH_SUMMARY and prints the table.
Run alone, a benchmark just prints its own output and `record` does nothing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ENV = "OVERSEER_BENCH_SUMMARY"


def record(measure: str, figure: str, target: str = "", met: bool | None = None) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    bench = Path(sys.argv[0]).stem
    line = {"bench": bench, "measure": measure, "figure": figure, "target": target, "met": met}
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")
