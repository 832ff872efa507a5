"""What the policy judges a candidate by, with plain defaults a test overrides."""

from __future__ import annotations

from overseer.core.safety.policy import CandidateFacts, Risk


def facts(**kw) -> CandidateFacts:
    base = dict(
        paths=("pkg/util.py",),
        change_type="quality",
        area="quality",
        generator="llm",
        finding="F401",
        lines_changed=3,
        stated_risk=Risk.LOW,
    )
    return CandidateFacts(**{**base, **kw})
