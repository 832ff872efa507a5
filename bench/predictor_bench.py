"""The success predictor on a long history: refit time and prediction latency.

    .venv/bin/python bench/predictor_bench.py

Targets (issue 7): on 10,000 attempts, refit under 2 s and a prediction under 5 ms, with
scikit-learn imported lazily (its import, once per process, is reported on its own).
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from overseer.base.clock import FakeClock
from overseer.core.learn.predictor import Predictor
from overseer.core.record.history import History
from summary import record

ROWS = 10_000
KINDS = ["F401", "E711", "UP006", "SIM108", "PERF401", "failing_test", "slow_test", "B006"]


def main() -> None:
    assert "sklearn" not in sys.modules
    directory = Path(tempfile.mkdtemp(prefix="overseer-predictor-"))
    history = History(directory / "history.sqlite3", FakeClock())
    rng = random.Random(0)
    rate = {kind: rng.uniform(0.1, 0.9) for kind in KINDS}
    outcomes = []
    for n in range(ROWS):
        kind = rng.choice(KINDS)
        row = {
            "generator": rng.choice(["ruff_fix", "llm"]),
            "finding_kind": kind,
            "change_type": rng.choice(["quality", "optimization", "bugfix"]),
            "risk_level": rng.choice(["low", "medium", "high"]),
            "lines_changed": rng.randint(1, 200),
            "files_changed": rng.randint(1, 3),
            "target_file": f"pkg/m{rng.randint(0, 300)}.py",
            "tests_failed": 0,
            "tests_passed": 300,
            "performance_delta": rng.choice([None, rng.uniform(-5, 5)]),
        }
        outcomes.append(
            {
                "improvement_id": f"{n:012x}",
                "at": f"2026-01-01T00:00:{n:06d}",
                "generator": row["generator"],
                "finding_kind": kind,
                "change_type": row["change_type"],
                "target_file": row["target_file"],
                "kept": int(rng.random() < rate[kind]),
                "features": row,
            }
        )
    history.db["outcomes"].insert_all(outcomes, batch_size=2000)
    predictor = Predictor(history, directory / "predictor")

    started = time.monotonic()
    import sklearn  # noqa: F401

    import_seconds = time.monotonic() - started
    fits = []
    for _ in range(3):
        started = time.monotonic()
        fitted = predictor.refit()
        fits.append(time.monotonic() - started)
    assert fitted is not None
    samples = [outcomes[i]["features"] for i in range(200)]
    timings = []
    for row in samples * 5:
        started = time.monotonic()
        predictor.predict(row)
        timings.append(time.monotonic() - started)
    print(f"history: {ROWS:,} outcomes over {len(KINDS)} finding kinds")
    print(f"scikit-learn import (lazy, once per process): {import_seconds * 1000:.0f} ms")
    print(
        f"refit (median of 3, all the work: reading the history, fitting, saving): {statistics.median(fits) * 1000:.0f} ms  (target < 2000 ms)"
    )
    print(f"  of which fitting the model: {fitted['seconds'] * 1000:.0f} ms")
    print(
        f"prediction (median of {len(timings)}): {statistics.median(timings) * 1000:.2f} ms, p99 {sorted(timings)[int(0.99 * len(timings))] * 1000:.2f} ms  (target < 5 ms)"
    )
    refit, predict = statistics.median(fits) * 1000, statistics.median(timings) * 1000
    record(f"refit on {ROWS:,} outcomes", f"{refit:.0f} ms", "< 2000 ms", refit < 2000)
    record("prediction", f"{predict:.2f} ms", "< 5 ms", predict < 5)
    history.close()


if __name__ == "__main__":
    main()
