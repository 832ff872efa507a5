"""A model's reply: forgiving about wrapping, strict about what decides the change."""

from __future__ import annotations

import json

import pytest

from overseer.core.candidate import Edit
from overseer.core.llm.reply import ReplyRejected, parse_reply
from overseer.core.policy import Risk

GOOD = {
    "target_file": "pkg/util.py",
    "change_type": "quality",
    "risk_level": "low",
    "impact": "removes an unused import",
    "rationale": "json is never used",
    "edits": [{"search": "import json\n", "replace": ""}],
}
TEXT = json.dumps(GOOD)


@pytest.mark.parametrize(
    "reply",
    [
        TEXT,
        json.dumps(GOOD, indent=2),
        f"```json\n{TEXT}\n```",
        f"```\n{TEXT}\n```",
        f"Sure! Here is the change:\n\n```json\n{json.dumps(GOOD, indent=2)}\n```\n\nLet me know.",
        f"Here it is: {TEXT} Hope it helps.",
        f'{{"note": "thinking"}}\n{TEXT}',  # an object without edits comes first
        json.dumps({**GOOD, "confidence": 0.9, "extra": [1, 2]}),  # keys we do not use
        json.dumps({**GOOD, "change_type": "Refactor", "risk_level": " LOW "}),  # synonyms, case
        json.dumps({**GOOD, "change_type": "optimisation"}),
        json.dumps({**GOOD, "risk_level": "med"}),
        "<think>the import is unused</think>" + TEXT,
        TEXT + "\n" + json.dumps({**GOOD, "target_file": "other.py"}),  # the first one wins
    ],
)
def test_good_replies_in_any_wrapping(reply):
    parsed = parse_reply(reply)
    assert parsed.target_file in ("pkg/util.py",)
    assert parsed.edits == [Edit("pkg/util.py", "import json\n", "")]
    assert parsed.risk_level in (Risk.LOW, Risk.MEDIUM)
    assert parsed.change_type in ("quality", "optimization")


def test_edits_may_name_their_own_file():
    reply = json.dumps(
        {
            **GOOD,
            "edits": [
                {"file": "pkg/other.py", "search": "a", "replace": "b"},
                {"search": "c", "replace": "d"},
            ],
        }
    )
    assert parse_reply(reply).edits == [
        Edit("pkg/other.py", "a", "b"),
        Edit("pkg/util.py", "c", "d"),
    ]


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "the reply is empty"),
        ("   \n ", "the reply is empty"),
        ("I cannot help with that.", "no JSON object with `edits`"),
        (
            '{"target_file": "x.py", "change_type": "quality"',
            "no JSON object with `edits`",
        ),  # cut off
        (
            json.dumps({k: v for k, v in GOOD.items() if k != "edits"}),
            "no JSON object with `edits`",
        ),
        (json.dumps({**GOOD, "edits": []}), "`edits` must be a non-empty list"),
        (json.dumps({**GOOD, "edits": "replace json"}), "`edits` must be a non-empty list"),
        (json.dumps({**GOOD, "edits": ["import json"]}), "edit 1 is not an object"),
        (
            json.dumps({**GOOD, "edits": [{"search": "a"}]}),
            "edit 1 needs `search` and `replace` strings",
        ),
        (
            json.dumps({**GOOD, "edits": [{"search": 1, "replace": "b"}]}),
            "edit 1 needs `search` and `replace` strings",
        ),
        (
            json.dumps({**GOOD, "edits": [{"search": "a", "replace": "a"}]}),
            "replaces its search text with itself",
        ),
        (
            json.dumps({**GOOD, "edits": [{"search": "a", "replace": "b", "file": 3}]}),
            "`file` that is not a string",
        ),
        (
            json.dumps({**GOOD, "edits": [{"search": str(i), "replace": "x"} for i in range(21)]}),
            "at most 20",
        ),
        (json.dumps({**GOOD, "target_file": ""}), "`target_file` must name the file"),
        (json.dumps({**GOOD, "target_file": None}), "`target_file` must name the file"),
        (
            json.dumps({**GOOD, "change_type": "rewrite-everything"}),
            "`change_type` 'rewrite-everything' is not one of",
        ),
        (json.dumps({**GOOD, "change_type": None}), "`change_type` must be a non-empty string"),
        (
            json.dumps({**GOOD, "risk_level": "none"}),
            "`risk_level` 'none' is not low, medium or high",
        ),
        (json.dumps({**GOOD, "risk_level": 0}), "`risk_level` must be a non-empty string"),
        (
            "```json\n{'target_file': 'x.py', 'edits': []}\n```",
            "no JSON object with `edits`",
        ),  # not JSON
        ("[" + TEXT + "]", "`edits`"),  # an array: the object inside is still read
    ],
)
def test_bad_replies_say_why(reply, reason):
    if reason == "`edits`":
        assert parse_reply(reply).edits  # arrays around the object are tolerated
        return
    with pytest.raises(ReplyRejected, match=None) as info:
        parse_reply(reply)
    assert reason in str(info.value)
