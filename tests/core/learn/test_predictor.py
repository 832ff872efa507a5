"""The success predictor: it learns which kinds of change are kept, stays calibrated, survives
a restart, steers what is tried next, and is only imported when there is something to learn."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from overseer.base.clock import FakeClock
from overseer.core.analyze.findings import Finding
from overseer.core.analyze.rank import rank
from overseer.core.learn.predictor import MIN_OUTCOMES, Predictor
from overseer.core.record.history import History
from overseer.core.safety.policy import CompiledPolicy, Decision, Policy
from support.facts import facts


def attempt_row(n: int, kind: str, file: str) -> dict:
    return {
        "improvement_id": f"{n:012x}",
        "generator": "llm",
        "finding_kind": kind,
        "change_type": "quality",
        "risk_level": "low",
        "lines_changed": 4,
        "files_changed": ["pkg/" + file],
        "target_file": "pkg/" + file,
        "tests_failed": 0,
    }


def simulate(
    history: History, predictor: Predictor, clock: FakeClock, count: int, rng: random.Random
):
    """`count` attempts: GOOD kinds are kept 9 times in 10, BAD ones 1 in 10. Each prediction is
    made (and recorded) before the outcome, then the predictor learns from it."""
    seen: dict[str, list[float]] = {"GOOD": [], "BAD": []}
    for n in range(count):
        clock.advance(60)
        kind = "GOOD" if n % 2 else "BAD"
        row = attempt_row(n, kind, f"{kind.lower()}{n % 5}.py")
        p = predictor.predict(row).probability
        seen[kind].append(p)
        kept = rng.random() < (0.9 if kind == "GOOD" else 0.1)
        history.create_attempt(
            improvement_id=row["improvement_id"],
            target="t",
            status="promoted" if kept else "failed",
            success_score=p,
            generator="llm",
            finding_kind=kind,
            target_file=row["target_file"],
        )
        history.add_outcome(
            improvement_id=row["improvement_id"],
            generator="llm",
            finding_kind=kind,
            change_type="quality",
            target_file=row["target_file"],
            kept=int(kept),
            features=row,
        )
        predictor.refit()
    return seen


def test_scores_rise_for_what_keeps_working_and_fall_for_what_keeps_failing(tmp_path):
    clock = FakeClock()
    history = History(tmp_path / "h.sqlite3", clock)
    predictor = Predictor(history, tmp_path / "predictor")
    seen = simulate(history, predictor, clock, 120, random.Random(4))
    good, bad = seen["GOOD"], seen["BAD"]
    assert good[0] == bad[0] == 0.5  # the prior, before anything was learned
    assert sum(good[-10:]) / 10 > 0.75 and sum(bad[-10:]) / 10 < 0.25
    assert sum(good[-10:]) / 10 > sum(good[:10]) / 10  # rose
    assert sum(bad[-10:]) / 10 < sum(bad[:10]) / 10  # fell
    latest = predictor.latest()
    assert latest["version"] >= 100 - MIN_OUTCOMES and latest["rows"] == 120
    assert latest["brier"] < 0.2  # far better than a constant 0.5 (0.25)
    buckets = {b["bucket"]: b for b in latest["reliability"]}
    assert buckets["0.8-1.0"]["kept"] > 0.7 and buckets["0.0-0.2"]["kept"] < 0.3  # calibrated
    history.close()


def test_the_prior_applies_until_there_is_enough_to_learn(tmp_path):
    clock = FakeClock()
    history = History(tmp_path / "h.sqlite3", clock)
    predictor = Predictor(history, tmp_path / "predictor")
    simulate(history, predictor, clock, MIN_OUTCOMES - 1, random.Random(1))
    assert predictor.latest() is None
    prediction = predictor.predict(attempt_row(999, "GOOD", "x.py"))
    assert prediction.source == "prior"
    kept, n = history.success_counts()[("llm", "GOOD")]
    assert prediction.probability == round((kept + 1) / (n + 2), 3)  # Beta(1, 1) posterior mean


def test_the_predictor_survives_a_restart(tmp_path):
    clock = FakeClock()
    history = History(tmp_path / "h.sqlite3", clock)
    predictor = Predictor(history, tmp_path / "predictor")
    simulate(history, predictor, clock, 40, random.Random(2))
    before = predictor.predict(attempt_row(999, "GOOD", "good1.py"))
    version = predictor.version
    history.close()
    history = History(tmp_path / "h.sqlite3", clock)
    again = Predictor(history, tmp_path / "predictor")
    after = again.predict(attempt_row(999, "GOOD", "good1.py"))
    assert again.version == version and after == before and after.source == f"model v{version}"
    history.close()


def test_a_low_prediction_needs_a_human_and_can_drop_a_change():
    policy = Policy(autonomy="full", success={"approval_below": 0.3, "drop_below": 0.1})
    assert (
        CompiledPolicy(policy).judge(facts(predicted_success=0.25), require_approval=False).decision
        is Decision.NEEDS_APPROVAL
    )
    dropped = CompiledPolicy(policy).judge(facts(predicted_success=0.05), require_approval=False)
    assert dropped.decision is Decision.DENY and "drop_below" in dropped.why()
    assert (
        CompiledPolicy(policy).judge(facts(predicted_success=0.6), require_approval=False).decision
        is Decision.ALLOW
    )


@pytest.mark.usefixtures("warm_baseline")
def test_a_cycle_ranks_its_findings_by_sampling(tmp_path, repo, monkeypatch):
    """The cycle's ANALYZE hands its per-cycle random source to the ranking (it once did not,
    and every cycle ranked by the mean, never exploring)."""
    import overseer.core.analyze as analyze_module
    from support.helpers import Harness

    seen = []

    def ranking(findings, **kw):
        seen.append(kw.get("rng"))
        return rank(findings, **kw)

    monkeypatch.setattr(analyze_module, "rank", ranking)
    h = Harness(tmp_path, repo, ruff_select=["F401"])
    h.cycle()
    h.close()
    assert len(seen) == 1 and isinstance(seen[0], random.Random)


def test_sampling_draws_once_per_kind_so_findings_of_a_kind_keep_their_order():
    """Thompson sampling is over generator × kind: two findings of one kind share a draw, and
    the one with more occurrences stays first whatever the draw."""
    findings = [
        Finding(
            kind="F401",
            area="quality",
            change_type="quality",
            file=name,
            message="",
            fixable=True,
            count=count,
        )
        for name, count in (("few.py", 1), ("many.py", 3))
    ]
    for seed in range(50):
        ranked = rank(
            findings,
            area="auto",
            generator_for=lambda f: "ruff_fix",
            counts={},
            rng=random.Random(seed),
        )
        assert [f.file for f in ranked] == ["many.py", "few.py"]


def test_thompson_sampling_tries_what_keeps_failing_less_often():
    findings = [
        Finding(
            kind="GOOD",
            area="quality",
            change_type="quality",
            file="a.py",
            message="",
            fixable=True,
        ),
        Finding(
            kind="BAD", area="quality", change_type="quality", file="b.py", message="", fixable=True
        ),
    ]
    counts = {("llm", "GOOD"): (5, 10), ("llm", "BAD"): (3, 10)}
    firsts = [
        rank(
            findings,
            area="auto",
            generator_for=lambda f: "llm",
            counts=counts,
            rng=random.Random(seed),
        )[0].kind
        for seed in range(300)
    ]
    assert firsts.count("GOOD") > 180 and firsts.count("BAD") > 20  # mostly the good, yet explored
    fresh = {("llm", "GOOD"): (0, 0), ("llm", "BAD"): (0, 0)}
    untried = [
        rank(
            findings, area="auto", generator_for=lambda f: "llm", counts=fresh, rng=random.Random(s)
        )[0].kind
        for s in range(300)
    ]
    assert 90 < untried.count("BAD") < 210  # no history: a fair coin


def test_scikit_learn_is_imported_only_to_learn():
    code = "import sys, json; import overseer.core.learn.predictor, overseer.core.cycle, overseer.cli; print(json.dumps('sklearn' in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) is False


def test_overseer_stats(tmp_path):
    from support.helpers import overseer

    clock = FakeClock()
    history = History(tmp_path / "state" / "history.sqlite3", clock)
    predictor = Predictor(history, tmp_path / "state" / "predictor")
    simulate(history, predictor, clock, 60, random.Random(3))
    for n in range(60):  # the attempts the simulation made are real ones, of these types
        history.update_attempt(
            f"{n:012x}", change_type="quality", risk_level="low", dry_run=0, was_rolled_back=0
        )
    history.close()
    out = overseer("stats", "--state-dir", str(tmp_path / "state"))
    assert out.returncode == 0, out.stderr
    assert "quality      low" in out.stdout
    assert (
        out.stdout.index("GOOD") < out.stdout.index("Least successful") < out.stdout.rindex("BAD")
    )
    assert "Predictor: model v" in out.stdout and "Brier" in out.stdout
    data = json.loads(overseer("stats", "--json", "--state-dir", str(tmp_path / "state")).stdout)
    assert (
        data["most_successful"][0]["finding_kind"] == "GOOD"
        and data["least_successful"][0]["finding_kind"] == "BAD"
    )
    assert data["predictor"]["rows"] == 60 and data["outcomes"] == 60
