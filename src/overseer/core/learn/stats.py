"""`overseer stats`: what has worked, what has not, and how well the predictor knows it."""

from __future__ import annotations

from typing import Any

from overseer.core.learn.predictor import MIN_OUTCOMES
from overseer.core.record.history import History
from overseer.vocabulary import FUNNEL, FUNNEL_TITLES


def compute_stats(history: History, *, target: str | None = None) -> dict[str, Any]:
    only = "and target = ? " if target else ""
    patterns = history.query(
        "select change_type, risk_level, count(*) as attempts, "
        "sum(case when status = 'promoted' then 1 else 0 end) as kept, "
        "round(avg(success_score), 3) as average_score, "
        "sum(was_rolled_back) as rollbacks, "
        "round(avg(performance_delta), 2) as average_perf_delta "
        f"from improvements where change_type is not null and dry_run = 0 {only}"
        "group by change_type, risk_level order by attempts desc",
        [target] if target else [],
    )
    # Each area's attempts, features with the rest: what the finding was about.
    areas = history.query(
        "select json_extract(finding, '$.area') as area, count(*) as attempts, "
        "sum(case when status = 'promoted' then 1 else 0 end) as kept, "
        "sum(was_rolled_back) as rollbacks "
        f"from improvements where finding is not null and dry_run = 0 {only}"
        "group by area order by attempts desc, area",
        [target] if target else [],
    )
    # The outcomes (LEARN's rows) name no target: their attempts do.
    of_target = (
        "and improvement_id in (select improvement_id from improvements where target = ?) "
        if target
        else ""
    )
    kinds = history.query(
        "select generator, finding_kind, count(*) as attempts, sum(kept) as kept "
        f"from outcomes where kept in (0, 1) {of_target}"
        "group by generator, finding_kind having count(*) >= 2",
        [target] if target else [],
    )
    for k in kinds:
        k["rate"] = round(k["kept"] / k["attempts"], 3)
    kinds.sort(key=lambda k: (-k["rate"], -k["attempts"]))
    # How many repair rounds (generate/repair.py) each kept change needed, per generator.
    repairs: dict[str, dict[str, int]] = {}  # keys as JSON has them
    for r in history.query(
        "select generator, coalesce(repair_rounds_used, 0) as used, count(*) as n "
        f"from outcomes where kept = 1 {of_target}"
        "group by generator, used order by generator, used",
        [target] if target else [],
    ):
        repairs.setdefault(r["generator"], {})[str(r["used"])] = int(r["n"])
    latest = history.decode(
        dict(
            next(
                iter(history.db.query("select * from predictor order by version desc limit 1")), {}
            )
            or {}
        )
    )
    return {
        "patterns": patterns,
        "areas": areas,
        "most_successful": kinds[:5],
        "least_successful": list(reversed(kinds[-5:])) if len(kinds) > 5 else list(reversed(kinds)),
        "predictor": latest
        or {
            "version": None,
            "note": f"the prior: Beta(1, 1) per generator × finding kind until {MIN_OUTCOMES} outcomes",
        },
        "outcomes": sum(k["attempts"] for k in kinds),
        "repair_rounds": repairs,
        "new_tests": new_tests_funnel(history, target),
    }


# The funnel of new tests (analyze/coverage.py, evaluate/proving.py): FUNNEL's stages, in
# order, each a subset of the one before it (the vocabulary's: the TUI shows them too).
APPROVED = ("ready_to_promote", "promoting", "promoted", "rolled_back", "regressed")


def new_tests_funnel(history: History, target: str | None = None) -> dict[str, dict[str, int]]:
    """Per generator: of its attempts at `uncovered_code`, how many had a candidate, whose new
    tests collected, passed every reliability run, raised the module's coverage, were approved
    (by the policy or a person) and kept; and how many SAFETY denied (an existing test edited, a
    test that asserts nothing) or wait for a person."""
    only = "and target = ? " if target else ""
    raised = "json_extract(evaluation, '$.proof.raised') = 1"
    approved = ", ".join(f"'{s}'" for s in APPROVED)
    rows = history.query(
        "select generator, "
        "sum(case when generated_code is not null then 1 else 0 end) as generated, "
        "sum(case when json_extract(evaluation, '$.proof.collected') = 1 then 1 else 0 end) "
        "as collected, "
        "sum(case when json_extract(evaluation, '$.proof.reliable') = 1 then 1 else 0 end) "
        "as reliable, "
        f"sum(case when {raised} then 1 else 0 end) as raised_coverage, "
        f"sum(case when {raised} and status in ({approved}) then 1 else 0 end) as approved, "
        f"sum(case when {raised} and status = 'promoted' then 1 else 0 end) as kept, "
        "sum(case when status = 'denied' then 1 else 0 end) as denied, "
        "sum(case when status = 'awaiting_approval' then 1 else 0 end) as waiting "
        "from improvements where finding_kind = 'uncovered_code' and dry_run = 0 "
        f"{only}group by generator order by generator",
        [target] if target else [],
    )
    return {r.pop("generator"): {k: int(v or 0) for k, v in r.items()} for r in rows}


def stats_text(s: dict[str, Any]) -> str:
    out = [f"Target {s['target']}"] if s.get("target") else []
    out.append("Success by change type and risk (real attempts)")
    if not s["patterns"]:
        out.append("  no real attempts yet")
    else:
        out.append(
            f"  {'TYPE':<13}{'RISK':<8}{'ATTEMPTS':>9}{'KEPT':>6}{'AVG SCORE':>11}{'ROLLBACKS':>11}{'AVG PERF':>10}"
        )
        for p in s["patterns"]:
            perf = (
                f"{p['average_perf_delta']:+.1f}%" if p["average_perf_delta"] is not None else "-"
            )
            score = f"{p['average_score']:.2f}" if p["average_score"] is not None else "-"
            out.append(
                f"  {p['change_type']:<13}{p['risk_level'] or '-':<8}{p['attempts']:>9}{p['kept']:>6}"
                f"{score:>11}{p['rollbacks'] or 0:>11}{perf:>10}"
            )
    if s.get("areas"):
        out.append(
            "By area: "
            + " · ".join(
                f"{a['area'] or '-'} {a['attempts']} attempt(s), {a['kept']} kept"
                for a in s["areas"]
            )
        )
    if s.get("repair_rounds"):
        out.append("Repair rounds a kept change needed (0: the first answer was kept)")
        for generator, used in s["repair_rounds"].items():
            out.append(
                f"  {generator:<10} "
                + " · ".join(f"{n} round(s): {count}" for n, count in sorted(used.items()))
            )
    if s.get("new_tests"):
        out.append("New tests (" + " → ".join(FUNNEL_TITLES) + ")")
        for generator, f in s["new_tests"].items():
            line = f"  {generator:<10} " + " → ".join(str(f[k]) for k in FUNNEL)
            if f.get("denied"):
                line += f" · {f['denied']} denied by SAFETY"
            if f.get("waiting"):
                line += f" · {f['waiting']} waiting for approval"
            out.append(line)
    for title, key in (
        ("Most successful finding kinds", "most_successful"),
        ("Least successful", "least_successful"),
    ):
        out.append(title + " (at least 2 outcomes)")
        if not s[key]:
            out.append("  none yet")
        for k in s[key]:
            out.append(
                f"  {k['finding_kind']:<16}{k['generator']:<10} {k['kept']}/{k['attempts']} kept ({k['rate']:.0%})"
            )
    p = s["predictor"]
    if p.get("version") is None:
        out.append(f"Predictor: {p['note']}")
    else:
        brier = (
            f"Brier {p['brier']:.3f} over {p['scored']} scored predictions"
            if p.get("brier") is not None
            else "no scored predictions yet"
        )
        out.append(
            f"Predictor: model v{p['version']}, trained {p['trained_at'][:19]} on {p['rows']} outcomes · {brier}"
        )
        for b in p.get("reliability") or []:
            out.append(
                f"  predicted {b['bucket']}: {b['n']:>4} changes, predicted {b['predicted']:.2f} on average, kept {b['kept']:.2f}"
            )
    return "\n".join(out)
