"""The policy's verdict: risk only ever goes up, protected paths are denied, flags only tighten."""

from __future__ import annotations

import pytest

from overseer.base.globs import glob_match
from overseer.core.safety.policy import (
    CandidateFacts,
    CompiledPolicy,
    Conditions,
    Decision,
    Policy,
    Risk,
    Rule,
)


def facts(**kw) -> CandidateFacts:
    base = dict(
        paths=("pkg/util.py",),
        change_type="quality",
        area="quality",
        generator="ruff_fix",
        finding="F401",
        lines_changed=2,
        stated_risk=Risk.LOW,
    )
    return CandidateFacts(**{**base, **kw})


def judge(policy: Policy, require_approval: bool = False, **kw):
    return CompiledPolicy(policy).judge(facts(**kw), require_approval=require_approval)


@pytest.mark.parametrize(
    ("autonomy", "risk", "area", "decision"),
    [
        ("observe", Risk.LOW, "quality", Decision.NEEDS_APPROVAL),
        ("supervised", Risk.LOW, "quality", Decision.NEEDS_APPROVAL),
        ("limited", Risk.LOW, "quality", Decision.ALLOW),
        ("limited", Risk.LOW, "performance", Decision.NEEDS_APPROVAL),
        ("limited", Risk.MEDIUM, "quality", Decision.NEEDS_APPROVAL),
        ("full", Risk.MEDIUM, "performance", Decision.ALLOW),
        ("full", Risk.HIGH, "quality", Decision.NEEDS_APPROVAL),
    ],
)
def test_autonomy_levels(autonomy, risk, area, decision):
    verdict = judge(Policy(autonomy=autonomy), stated_risk=risk, area=area)
    assert verdict.decision is decision
    assert verdict.force_dry_run is (autonomy == "observe")


def test_require_approval_flag_only_tightens():
    limited = Policy(autonomy="limited")
    assert judge(limited, require_approval=True).decision is Decision.NEEDS_APPROVAL
    # --no-require-approval does not override a policy that demands approval.
    assert (
        judge(Policy(autonomy="supervised"), require_approval=False).decision
        is Decision.NEEDS_APPROVAL
    )


@pytest.mark.parametrize("stated", list(Risk))
def test_no_rule_lowers_the_stated_risk(stated):
    policy = Policy(
        autonomy="full",
        rules=[Rule(name="calm", when=Conditions(), risk=Risk.LOW, verdict=Decision.ALLOW)],
    )
    verdict = judge(policy, stated_risk=stated)
    assert verdict.risk.rank >= stated.rank
    assert verdict.risk is stated


def test_rules_raise_risk_and_tighten_with_their_reasons():
    policy = Policy(
        autonomy="full",
        rules=[
            Rule(
                name="core",
                when=Conditions(paths=["pkg/**"], finding=["F4*"]),
                risk=Risk.HIGH,
                reason="core code",
            ),
            Rule(name="never-perf", when=Conditions(area=["performance"]), verdict=Decision.DENY),
            Rule(name="big", when=Conditions(min_lines=10), risk=Risk.MEDIUM),
        ],
    )
    hit = judge(policy)
    assert hit.risk is Risk.HIGH and hit.rules == ["core"]
    assert "rule core: core code" in hit.reasons
    assert hit.decision is Decision.NEEDS_APPROVAL  # full autonomy stops at medium
    assert judge(policy, paths=("other/x.py",)).rules == []
    assert judge(policy, area="performance", paths=("x.py",)).decision is Decision.DENY
    assert judge(policy, paths=("x.py",), lines_changed=12).rules == ["big"]


def test_size_limits_measured_from_the_change():
    p = Policy(autonomy="full")
    assert judge(p, lines_changed=21).risk is Risk.MEDIUM
    assert judge(p, lines_changed=101).risk is Risk.HIGH
    denied = judge(p, lines_changed=401)
    assert denied.decision is Decision.DENY
    assert any("more than size.max_lines=400" in r for r in denied.reasons)
    assert judge(p, paths=("a.py", "b.py", "c.py", "d.py")).decision is Decision.DENY


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".github/workflows/ci.yml",
        ".gitlab-ci.yml",
        "sub/uv.lock",
        "package-lock.json",
        ".ci/run",
    ],
)
def test_builtin_protected_paths_are_denied_at_every_level(path):
    for autonomy in ("supervised", "limited", "full"):
        verdict = judge(Policy(autonomy=autonomy, rules=[]), paths=(path,))
        assert verdict.decision is Decision.DENY, (autonomy, path)
        assert verdict.risk is Risk.HIGH


def test_test_code_is_medium_risk_by_default():
    verdict = judge(Policy(autonomy="limited"), paths=("tests/test_util.py",))
    assert verdict.risk is Risk.MEDIUM and verdict.decision is Decision.NEEDS_APPROVAL
    assert verdict.rules == ["test-code"]


def test_success_below_rule():
    policy = Policy(
        autonomy="full",
        rules=[
            Rule(
                name="unproven", when=Conditions(success_below=0.4), verdict=Decision.NEEDS_APPROVAL
            )
        ],
    )
    assert judge(policy, predicted_success=0.3).decision is Decision.NEEDS_APPROVAL
    assert judge(policy, predicted_success=0.6).decision is Decision.ALLOW
    assert judge(policy).decision is Decision.ALLOW  # no prediction, no match


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*.lock", "poetry.lock", True),
        ("*.lock", "deep/down/Cargo.lock", True),
        ("src/app/**", "src/app/x/y.py", True),
        ("src/app/**", "src/application.py", False),
        ("tests/**", "pkg/tests/x.py", False),
        ("tests", "pkg/tests/x.py", True),
        ("**/conftest.py", "conftest.py", True),
        ("**/conftest.py", "a/b/conftest.py", True),
        ("test_*.py", "tests/test_x.py", True),
        ("test_*.py", "tests/x_test.py", False),
        (".git/**", ".git/hooks/pre-commit", True),
        ("a?c.py", "abc.py", True),
        ("a?c.py", "a/c.py", False),
    ],
)
def test_globs(pattern, path, matches):
    assert glob_match(pattern, path) is matches


def test_repr_is_useful():
    text = repr(CompiledPolicy(Policy()))
    assert "autonomy=supervised" in text and "rules=2" in text


FEATURE = dict(
    change_type="feature",
    area="features",
    finding="xfail_test",
    paths=("pkg/calc.py", "tests/test_calc.py"),
    xfail_removed=("tests/test_calc.py::test_divide",),
)


def test_a_feature_is_at_least_medium_risk_by_default():
    verdict = judge(Policy(autonomy="full"), **FEATURE)
    assert verdict.risk is Risk.MEDIUM and "features" in verdict.rules
    assert verdict.decision is Decision.ALLOW  # full autonomy goes up to medium
    assert judge(Policy(autonomy="full"), **{**FEATURE, "paths": ("pkg/calc.py",)}).rules == [
        "features"
    ]
    limited = judge(Policy(autonomy="limited", areas=["features"]), **FEATURE)
    assert limited.decision is Decision.NEEDS_APPROVAL and limited.risk is Risk.MEDIUM
    assert "features" not in judge(Policy(autonomy="full")).rules


def test_rules_can_target_features_by_change_type_and_area(tmp_path):
    from overseer.core.safety.policy import load_policy

    path = tmp_path / "policy.yaml"
    path.write_text(
        "autonomy: full\n"
        "rules:\n"
        "  - name: features-are-reviewed\n"
        "    when: {change_type: [feature]}\n"
        "    risk: high\n"
        "  - name: no-features-in-core\n"
        "    when: {area: [features], paths: ['pkg/core/**']}\n"
        "    verdict: deny\n"
    )
    policy = load_policy(path)
    reviewed = policy.judge(facts(**FEATURE), require_approval=False)
    assert reviewed.rules == ["features-are-reviewed"] and reviewed.risk is Risk.HIGH
    assert reviewed.decision is Decision.NEEDS_APPROVAL
    core = policy.judge(facts(**{**FEATURE, "paths": ("pkg/core/x.py",)}), require_approval=False)
    assert core.decision is Decision.DENY and "no-features-in-core" in core.rules
    assert policy.judge(facts(paths=("pkg/core/x.py",)), require_approval=False).rules == []


@pytest.mark.parametrize("autonomy", ["observe", "supervised", "limited", "full"])
def test_a_feature_that_edits_tests_beyond_its_own_mark_is_denied_at_every_level(autonomy):
    why = "removes the xfail mark of tests/test_calc.py::test_other, not of the test this feature is for"
    verdict = judge(
        Policy(autonomy=autonomy, full_max_auto_risk="high"), **FEATURE, test_edits=(why,)
    )
    assert verdict.decision is Decision.DENY and verdict.risk is Risk.HIGH
    assert verdict.why() == f"oracle: a feature change {why}"


def test_the_facts_of_a_feature_survive_the_history():
    recorded = facts(**FEATURE, test_edits=("edits test code",))
    assert CandidateFacts.from_dict(recorded.to_dict()) == recorded
    older = {
        k: v for k, v in recorded.to_dict().items() if k not in ("xfail_removed", "test_edits")
    }
    assert CandidateFacts.from_dict(older).test_edits == ()
