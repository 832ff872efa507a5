"""LEARN: every settled attempt becomes a training row, and the counts that steer ranking.

A change is "kept" when it was promoted and not rolled back. Failed evaluations, denials,
rejections and rollbacks are not kept. Dry runs that passed evaluation teach nothing yet: no
one knows whether the change would have been kept. The counts per generator × finding kind
feed the ranking (see analyze/rank.py), so kinds of change that keep failing are tried less.
"""

from __future__ import annotations

from typing import Any

from overseer.core.analyze.rank import learned_rate
from overseer.core.record.history import History
from overseer.vocabulary import AttemptRow, AttemptStatus

KEPT = {
    AttemptStatus.PROMOTED: 1,
    AttemptStatus.ROLLED_BACK: 0,
    AttemptStatus.REGRESSED: 0,
    AttemptStatus.REJECTED: 0,
    AttemptStatus.FAILED: 0,
    AttemptStatus.DENIED: 0,
}


def features_of(row: AttemptRow) -> dict[str, Any]:
    """What is known about an attempt before its outcome: the predictor's inputs."""
    return {
        "generator": row.get("generator"),
        "finding_kind": row.get("finding_kind"),
        "change_type": row.get("change_type"),
        "risk_level": row.get("risk_level"),
        "lines_changed": row.get("lines_changed"),
        "files_changed": len(row.get("files_changed") or []),
        "target_file": row.get("target_file"),
        "tests_failed": row.get("tests_failed"),
        "performance_delta": row.get("performance_delta"),
        "dry_run": bool(row.get("dry_run")),
    }


def label_of(row: AttemptRow) -> int | None:
    status = row["status"]
    if status == AttemptStatus.DRY_RUN:
        evaluation = row.get("evaluation") or {}
        return 0 if evaluation and not evaluation.get("passed", True) else None
    return KEPT.get(status)


def record_outcome(history: History, row: AttemptRow) -> str:
    """Store the attempt's outcome as a training row; says what was learned."""
    generator, kind = row.get("generator"), row.get("finding_kind")
    label = label_of(row)
    if label is None or not generator or not kind:
        return f"nothing to learn yet ({row['status']})"
    history.add_outcome(
        improvement_id=row["improvement_id"],
        generator=generator,
        finding_kind=kind,
        change_type=row.get("change_type"),
        target_file=row.get("target_file"),
        kept=label,
        features=features_of(row),
        # How many rounds after the first the change needed (generate/repair.py): what
        # `overseer stats` shows of the kept ones, per generator.
        repair_rounds_used=row.get("repair_rounds_used"),
    )
    kept, attempts = history.success_counts().get((generator, kind), (0, 0))
    return f"{generator} × {kind}: {kept}/{attempts} kept, next priority {learned_rate(kept, attempts):.2f}"
