"""An optional benchmark command that prints JSON metrics, e.g. `{"latency_ms": 12.5}`, and
the finding it makes when its metric got worse over the analysed commits: a benchmark
regression, profiled (profile.py) so that a model is shown what to make faster."""

from __future__ import annotations

import hashlib
import json
import statistics
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from overseer.config import TargetConfig
from overseer.core.analyze.findings import Finding
from overseer.core.plumbing.confine import for_run
from overseer.core.plumbing.sandbox import run_command

# Metrics whose names say bigger is better; for every other metric smaller is better (time).
HIGHER_IS_BETTER = ("throughput", "ops", "per_s", "per_sec", "rps", "score", "qps", "speed")
REGRESSION = "benchmark_regression"
# The metric "got worse" when it is this much worse than the median of at least this many
# earlier analysed commits, and more than three times their own spread: one run per commit,
# so the bar is well above the noise of one run.
REGRESSION_PERCENT = 20.0
REGRESSION_MIN_COMMITS = 3


def higher_is_better(metric: str) -> bool:
    return any(word in metric.lower() for word in HIGHER_IS_BETTER)


def benchmark_key(command: str) -> str:
    """The baseline cache's key for a benchmark command's results at a commit."""
    return "bench:" + hashlib.sha256(command.encode()).hexdigest()[:16]


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


def run_benchmark(
    target: TargetConfig,
    tree: Path,
    env: dict[str, str],
    cancel: threading.Event | None = None,
    outputs: Sequence[Path] = (),
) -> dict[str, Any]:
    """The target's benchmark command, once, in `tree`: confined as its tests are (writing
    only in `tree`, its own temp directory and `outputs`; core/plumbing/confine.py)."""
    assert target.benchmark_command
    with tempfile.TemporaryDirectory(prefix="overseer-benchmark-") as scratch:
        confinement, confined = for_run(target, tree, Path(scratch), env, outputs)
        if confinement is None and target.confine_tests is True:
            return {"ok": False, "error": f"the benchmark was not started: {confined}"}
        try:
            result = run_command(
                target.benchmark_command,
                cwd=tree,
                env=env,
                timeout=target.benchmark_timeout,
                cancel=cancel,
                kind="benchmark",
                confinement=confinement,
            )
        finally:
            if confinement is not None:
                confinement.close()
    if not result.ok:
        return {"ok": False, "error": result.describe(), "output": result.output_tail[-2000:]}
    try:
        metrics = parse_metrics(result.output_tail)
    except ValueError as exc:
        return {"ok": False, "error": str(exc), "output": result.output_tail[-2000:]}
    return {"ok": True, "metrics": metrics, "duration": round(result.duration, 3)}


def regression(
    benchmark: dict[str, Any], earlier: list[tuple[str, dict[str, Any]]], metric: str | None
) -> Finding | None:
    """A benchmark regression finding, if `metric` (default: the first printed) at this commit
    is clearly worse than at the `earlier` analysed commits ((commit, result), newest first).
    Its file is not known until it is profiled: what the benchmark spends its time in."""
    metrics: dict[str, float] = benchmark.get("metrics") or {}
    chosen = metric or next(iter(metrics), None)
    if not benchmark.get("ok") or chosen is None or chosen not in metrics:
        return None
    before_at = [
        (commit, float(r["metrics"][chosen]))
        for commit, r in earlier
        if r.get("ok") and chosen in (r.get("metrics") or {})
    ]
    if len(before_at) < REGRESSION_MIN_COMMITS:
        return None
    before = [v for _, v in before_at]
    median = statistics.median(before)
    spread = statistics.median(abs(v - median) for v in before)
    now = metrics[chosen]
    worse = median - now if higher_is_better(chosen) else now - median
    if median == 0 or worse / abs(median) * 100 < REGRESSION_PERCENT or worse <= 3 * spread:
        return None
    return Finding(
        kind=REGRESSION,
        area="performance",
        change_type="optimization",
        file=None,
        message=(
            f"the benchmark's {chosen} got worse: {now:g} now, {median:g} before (median of "
            f"{len(before)} earlier commits since {before_at[-1][0][:7]})"
        ),
        details={
            "metric": chosen,
            "now": now,
            "before": median,
            "commits": [c for c, _ in before_at],
        },
    )
