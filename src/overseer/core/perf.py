"""Performance, measured so that noise is not mistaken for an effect.

The benchmark runs on the baseline and on the candidate in turn (A B A B …), so that a machine
that gets busier or cooler during the measurement affects both alike. The difference of the
medians comes with a 95 % bootstrap interval; a change is called faster or slower only when
that interval excludes zero and the effect is at least `min_effect` percent. Otherwise the
performance delta stays empty: unknown is better than wrong.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

# Metrics whose names say bigger is better; for every other metric smaller is better (time).
HIGHER_IS_BETTER = ("throughput", "ops", "per_s", "per_sec", "rps", "score", "qps", "speed")
RESAMPLES = 2000


def higher_is_better(metric: str) -> bool:
    return any(word in metric.lower() for word in HIGHER_IS_BETTER)


@dataclass
class PerfComparison:
    metric: str | None = None
    baseline: list[float] = field(default_factory=list)
    candidate: list[float] = field(default_factory=list)
    delta: float | None = None  # percent improvement of the median: positive is better
    low: float | None = None  # 95 % bootstrap interval of the delta
    high: float | None = None
    verdict: str = "unknown"  # faster | slower | no clear difference | unknown
    error: str | None = None

    @property
    def performance_delta(self) -> float | None:
        """The delta only when it is an effect, not noise."""
        return self.delta if self.verdict in ("faster", "slower") else None

    def describe(self) -> str:
        if self.verdict == "unknown":
            return f"performance unknown: {self.error}" if self.error else "performance unknown"
        interval = f"95% interval {self.low:+.1f} … {self.high:+.1f} %"
        return f"{self.verdict} ({self.metric} {self.delta:+.1f} %, {interval}, {len(self.baseline)} runs each)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _improvement(before: float, after: float, higher: bool) -> float:
    change = (after - before) / abs(before) * 100
    return change if higher else -change


def compare_samples(
    baseline: list[float], candidate: list[float], metric: str, *, min_effect: float, seed: int = 0
) -> PerfComparison:
    result = PerfComparison(metric=metric, baseline=baseline, candidate=candidate)
    if len(baseline) < 2 or len(candidate) < 2:
        result.error = "fewer than two runs on each side"
        return result
    before, after = statistics.median(baseline), statistics.median(candidate)
    if before == 0:
        result.error = f"the baseline's median {metric} is 0"
        return result
    higher = higher_is_better(metric)
    rng = random.Random(seed)
    deltas = []
    for _ in range(RESAMPLES):
        a = statistics.median(rng.choices(baseline, k=len(baseline)))
        b = statistics.median(rng.choices(candidate, k=len(candidate)))
        if a:
            deltas.append(_improvement(a, b, higher))
    deltas.sort()
    result.delta = round(_improvement(before, after, higher), 2)
    result.low = round(deltas[int(0.025 * (len(deltas) - 1))], 2)
    result.high = round(deltas[int(0.975 * (len(deltas) - 1))], 2)
    if result.low > 0 and result.delta >= min_effect:
        result.verdict = "faster"
    elif result.high < 0 and result.delta <= -min_effect:
        result.verdict = "slower"
    else:
        result.verdict = "no clear difference"
    return result


def interleaved(
    run_baseline: Callable[[], dict[str, Any]],
    run_candidate: Callable[[], dict[str, Any]],
    runs: int,
    metric: str | None,
    *,
    min_effect: float,
) -> PerfComparison:
    """Run the benchmark A B A B … and compare the chosen metric."""
    a_runs: list[dict[str, float]] = []
    b_runs: list[dict[str, float]] = []
    for _ in range(runs):
        for run, into in ((run_baseline, a_runs), (run_candidate, b_runs)):
            outcome = run()
            if not outcome.get("ok"):
                side = "baseline" if into is a_runs else "candidate"
                return PerfComparison(
                    metric=metric,
                    error=f"the benchmark failed on the {side}: {outcome.get('error')}",
                )
            into.append(outcome["metrics"])
    chosen = metric or next(iter(a_runs[0]), None)
    if chosen is None or any(chosen not in m for m in a_runs + b_runs):
        return PerfComparison(metric=chosen, error=f"metric {chosen!r} is missing from some runs")
    return compare_samples(
        [m[chosen] for m in a_runs], [m[chosen] for m in b_runs], chosen, min_effect=min_effect
    )
