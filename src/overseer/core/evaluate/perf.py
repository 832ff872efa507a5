"""Performance, measured so that noise is not mistaken for an effect.

The benchmark runs on the baseline and on the candidate in turn (A B A B …), so that a machine
that gets busier or cooler during the measurement affects both alike. The difference of the
medians comes with a 95 % bootstrap interval; a change is called faster or slower only when
that interval excludes zero, a rank permutation test agrees (p < 0.05), and
the effect is at least `min_effect` percent. Otherwise the performance delta stays empty:
unknown is better than wrong.

Why both: with a handful of runs the bootstrap interval is too narrow (on pure noise it calls
a difference about 10 % of the time with 3 runs a side, 3 % with 5; bench-free check:
tests/core/evaluate/test_watch.py). The permutation test holds its 5 % by construction and knows when there
are too few runs to tell at all (3 a side: p is never below 0.1).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from overseer.core.analyze.benchmark import higher_is_better

RESAMPLES = 2000
ALPHA = 0.05  # the permutation test's level


@dataclass
class PerfComparison:
    metric: str | None = None
    baseline: list[float] = field(default_factory=list)
    candidate: list[float] = field(default_factory=list)
    delta: float | None = None  # percent improvement of the median: positive is better
    low: float | None = None  # 95 % bootstrap interval of the delta
    high: float | None = None
    p_value: float | None = None  # rank permutation test (two-sided)
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
        if self.p_value is not None:
            interval += f", p={self.p_value:.3f}"
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
    result.p_value = round(_permutation_p(baseline, candidate, rng), 4)
    clear = result.p_value < ALPHA
    if clear and result.low > 0 and result.delta >= min_effect:
        result.verdict = "faster"
    elif clear and result.high < 0 and result.delta <= -min_effect:
        result.verdict = "slower"
    else:
        result.verdict = "no clear difference"
    return result


def _permutation_p(baseline: list[float], candidate: list[float], rng: random.Random) -> float:
    """Two-sided p-value of the rank-sum (Mann-Whitney) statistic under random relabelling of
    the runs, counting the observed labelling so that it is never 0. Ranks, not medians: a
    difference of medians barely moves when one run swaps sides, so it has almost no power
    with a few runs."""
    pooled = [*baseline, *candidate]
    order = sorted(range(len(pooled)), key=pooled.__getitem__)
    ranks = [0.0] * len(pooled)
    i = 0
    while i < len(order):  # tied values share their average rank
        j = i
        while j + 1 < len(order) and pooled[order[j + 1]] == pooled[order[i]]:
            j += 1
        for t in order[i : j + 1]:
            ranks[t] = (i + j) / 2 + 1
        i = j + 1
    k = len(baseline)
    expected = len(candidate) * (len(pooled) + 1) / 2
    observed = abs(sum(ranks[k:]) - expected) - 1e-9
    extreme = 0
    for _ in range(RESAMPLES):
        rng.shuffle(ranks)
        if abs(sum(ranks[k:]) - expected) >= observed:
            extreme += 1
    return (extreme + 1) / (RESAMPLES + 1)


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
