"""A model's reply: forgiving about wrapping, strict about what decides the change."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overseer.core.generate.candidate import Edit
from overseer.core.generate.llm.reply import (
    MAX_OBJECT_STARTS,
    MAX_REPLY_CHARS,
    Reply,
    ReplyRejected,
    parse_reply,
)
from overseer.core.safety.policy import Risk

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


# -- whatever the model sends, a Reply or a reason -------------------------------------------


def read(text: str) -> Reply | str:
    """The Reply, or the reason it was rejected; anything else raised fails the test."""
    try:
        reply = parse_reply(text)
    except ReplyRejected as exc:
        reason = str(exc)
        # A reason goes into the history and one-line reports: short, and storable as UTF-8.
        assert reason and "\x00" not in reason and len(reason) < 500
        reason.encode("utf-8")
        return reason
    for edit in reply.edits:  # written to files as UTF-8
        (edit.path + edit.search + edit.replace).encode("utf-8")
    (reply.target_file + reply.impact + reply.rationale).encode("utf-8")
    assert "\x00" not in reply.impact + reply.rationale
    return reply


# Any code point, surrogates included (st.text leaves them out by default).
ANY_TEXT = st.text(st.characters(codec=None, blacklist_categories=()))
# Pieces that steer the decoder into its corners: nesting, strings left open, escapes, huge
# numbers, NUL, lone surrogates, fences, and the keys a reply must have.
PIECES = st.sampled_from(
    ["{", "}", "[", "]", ":", ",", '"', "\\", " ", "\n", "```json\n", "```"]
    + ["\x00", "\ud800", "\udfff", "\ufffd", "\\udc80", "\\u0000"]
    + ['"edits"', '"edits": [', '"search"', '"replace"', '"file"', '"target_file": "a.py"']
    + ['"change_type": "quality"', '"risk_level": "low"']
    + ["null", "true", "-0", "1e999", "9" * 5000, "NaN", "Infinity"]
)
SOUP = st.lists(PIECES | ANY_TEXT, max_size=60).map("".join)
NESTED = st.builds(
    lambda n, opener, tail: opener * n + tail,
    st.integers(1, 5000),
    st.sampled_from(['{"edits": [', "{", "[", '{"a":', '{"edits": [{"search": ']),
    st.sampled_from(["", "]}", "}" * 10, json.dumps(GOOD)]),
)
# A good reply cut short, or with a piece let in somewhere.
GOOD_BROKEN = st.builds(
    lambda cut, at, piece: (TEXT[:cut], TEXT[:at] + piece + TEXT[at:]),
    st.integers(0, len(TEXT)),
    st.integers(0, len(TEXT)),
    PIECES | ANY_TEXT,
).flatmap(st.sampled_from)


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT | SOUP)
def test_any_text_is_read_or_rejected_never_raises(text):
    read(text)


@settings(max_examples=100, deadline=None)
@given(NESTED | GOOD_BROKEN)
def test_nesting_and_broken_replies_are_read_or_rejected(text):
    read(text)


HOSTILE = '{"edits": ['


def test_a_five_megabyte_reply_is_rejected_unread_saying_its_size():
    text = HOSTILE * (5 * 1024 * 1024 // len(HOSTILE))
    assert read(text) == (
        f"the reply is {len(text):,} characters long; at most {MAX_REPLY_CHARS:,} are read"
    )


def test_the_size_cap_is_exact():
    padded = TEXT + " " * (MAX_REPLY_CHARS - len(TEXT))
    assert isinstance(read(padded), Reply)
    assert "at most" in read(padded + " ")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # Used to be a RecursionError out of json's decoder.
        ((HOSTILE * MAX_REPLY_CHARS)[:MAX_REPLY_CHARS], "gave up after"),
        ("[" * 100_000, "no JSON object with `edits`"),
        ('{"edits": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ("{" * MAX_REPLY_CHARS, f"gave up after {MAX_OBJECT_STARTS} tries"),
        ('{"a": {"a": ' * 5000, "no JSON object with `edits`"),
        # A fence opener then newlines: the fence pattern used to backtrack quadratically.
        ("```" + "\n" * (MAX_REPLY_CHARS - 3), "no JSON object with `edits`"),
        # Longer than int() accepts: that object cannot be decoded, the reply holds no other.
        (json.dumps({**GOOD, "impact": 0}).replace("0", "9" * 5000), "no JSON object"),
    ],
    ids=[
        "edits-opener-to-the-cap",
        "100k-brackets",
        "valid-but-100k-deep",
        "braces-to-the-cap",
        "objects-never-closed",
        "fence-then-newlines",
        "5000-digit-number",
    ],
)
def test_hostile_shapes_are_rejected_with_a_reason(text, reason):
    assert reason in read(text)


def test_lone_surrogates_and_nul_bytes():
    # Around a good object, they are prose: it is still read; in its prose fields, replaced.
    noisy = "\x00\ud800 thinking \x00" + json.dumps(
        {**GOOD, "impact": "fast\x00er \udc80"}, ensure_ascii=False
    )
    reply = read(noisy)
    assert isinstance(reply, Reply) and reply.impact == "fast\ufffder \ufffd"
    # Escaped the JSON way, the same.
    assert read(json.dumps({**GOOD, "impact": "\udc80"})).impact == "\ufffd"
    # In what is written to a file, refused: it cannot be written as UTF-8.
    in_search = {"search": "\udc80", "replace": ""}
    in_replace = {"search": "import json\n", "replace": "\ud800"}
    for edit in (in_search, in_replace):
        assert read(json.dumps({**GOOD, "edits": [edit]})) == (
            "edit 1 holds text that is not valid Unicode (a lone surrogate)"
        )
    unwritable = json.dumps({**GOOD, "target_file": "\udc80.py"})
    assert read(unwritable) == "`target_file` is not valid Unicode (a lone surrogate)"
    # A NUL in an edit is left to SAFETY, which refuses NUL in paths and in the files it writes.
    assert read(json.dumps({**GOOD, "edits": [{"search": "a", "replace": "\x00"}]})).edits


def test_an_object_inside_another_is_still_found():
    # The search skips the braces inside an object it decoded, and walks the value instead.
    assert read(json.dumps({"response": {"note": "{", "change": GOOD}})).edits
    assert read(json.dumps([{"note": "x"}, [GOOD]])).edits
    assert read('{"note": "a dict: {\\"edits\\": 1}"} ' + TEXT).edits


def test_a_long_value_is_shortened_in_the_reason():
    reason = read(json.dumps({**GOOD, "change_type": "x" * 100_000}))
    assert reason.startswith("`change_type` 'xxx") and "(100,000 characters)" in reason
    assert len(reason) < 200
