"""An optional benchmark command that prints JSON metrics, e.g. `{"latency_ms": 12.5}`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from overseer.core.plumbing.sandbox import run_command


def parse_metrics(output: str) -> dict[str, float]:
    """The last line of output that is a JSON object of numbers."""
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict):
            metrics = {
                str(k): float(v)
                for k, v in data.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            if metrics:
                return metrics
    raise ValueError("the benchmark printed no JSON object of numeric metrics on a line of its own")


def run_benchmark(command: str, tree: Path, env: dict[str, str], timeout: float) -> dict[str, Any]:
    result = run_command(command, cwd=tree, env=env, timeout=timeout, kind="benchmark")
    if not result.ok:
        return {"ok": False, "error": result.describe(), "output": result.output_tail[-2000:]}
    try:
        metrics = parse_metrics(result.output_tail)
    except ValueError as exc:
        return {"ok": False, "error": str(exc), "output": result.output_tail[-2000:]}
    return {"ok": True, "metrics": metrics, "duration": round(result.duration, 3)}
