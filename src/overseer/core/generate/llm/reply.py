"""A model's reply, read forgivingly where that is safe and strictly where it matters.

Forgiving: the JSON object may be wrapped in a code fence or in prose, use `'` nowhere it
matters, and carry keys we do not use. Strict: the fields that decide what changes must be
there and of the right type, there must be at least one edit, and (applied later, by SAFETY)
each edit's search text must occur exactly once in its file. A reply that cannot be used says
why, and its raw text is kept with the attempt (capped, by the llm generator).

Reading fails no other way, whatever the model sent: `parse_reply` returns a Reply or raises
ReplyRejected. A reply longer than MAX_REPLY_CHARS is refused unread. Objects are looked for
at each `{`, skipping past an object once decoded, and the search gives up after
MAX_OBJECT_STARTS tries or MAX_DECODED_CHARS decoded in all: a reply built of braces cannot
make the work quadratic. A decoder that gives up (nesting too deep, a number too long) is a
reason, not a crash. Text that cannot be written as UTF-8 (lone surrogates, which JSON's
`\\udXXX` escapes can carry) is refused in the edits, which are written to files, and replaced
in the prose kept.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from overseer.core.generate.candidate import Edit, Risk

CHANGE_TYPES = ("optimization", "bugfix", "feature", "quality", "test")
_SYNONYMS = {
    "optimisation": "optimization",
    "performance": "optimization",
    "perf": "optimization",
    "fix": "bugfix",
    "bug": "bugfix",
    "bug fix": "bugfix",
    "refactor": "quality",
    "refactoring": "quality",
    "style": "quality",
    "cleanup": "quality",
    "med": "medium",
    "moderate": "medium",
}
MAX_EDITS = 20
# A change is a few edits: a reply this long is not one, and reading it costs time and memory.
MAX_REPLY_CHARS = 256 * 1024
# Each try at a `{` may decode to the end of the reply, so both how many `{` are tried and
# how far the decoder goes in all are capped: a reply needing more is noise, not a change.
MAX_OBJECT_STARTS = 1000
MAX_DECODED_CHARS = 4 * MAX_REPLY_CHARS
REASON_VALUE_CHARS = 60  # a value quoted in a reason (a reason goes into one-line reports)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class ReplyRejected(Exception):
    """The reply cannot be used; the message says why."""


@dataclass
class Reply:
    target_file: str
    change_type: str
    risk_level: Risk
    impact: str
    rationale: str
    edits: list[Edit]


def storable(text: str) -> str:
    """`text` with NUL and lone surrogates replaced by U+FFFD: SQLite's UTF-8 cannot hold a
    surrogate, and a NUL cuts C strings (logs, terminals) short."""
    return _UNSTORABLE.sub("\ufffd", text)


def _encodable(text: str) -> bool:
    return not re.search("[\ud800-\udfff]", text)


def _shown(value: Any) -> str:
    """`value` quoted for a reason, short and printable (repr escapes NUL and surrogates)."""
    if isinstance(value, str) and len(value) > REASON_VALUE_CHARS:
        return f"{value[:REASON_VALUE_CHARS]!r}… ({len(value):,} characters)"
    return repr(value)


def _first_with_edits(value: Any) -> dict[str, Any] | None:
    """The first object with `edits` in `value`, outermost first, then in the order written.

    Iterative: the decoder accepts nesting deep enough to exhaust Python's stack.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "edits" in item:
                return item
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return None


def _with_edits(text: str) -> tuple[dict[str, Any] | None, str]:
    """The first JSON object with `edits` in `text`; if none, what made it harder to find.

    After an object decodes, the search goes on past its end, not at the braces inside it
    (those were walked in the decoded value): trying every `{` again is quadratic.
    """
    decoder = json.JSONDecoder()
    tries = decoded = 0
    too_deep = False
    position = text.find("{")
    while position != -1:
        if tries == MAX_OBJECT_STARTS or decoded > MAX_DECODED_CHARS:
            return None, f"; gave up after {tries} tries at a `{{`, {decoded:,} characters decoded"
        tries += 1
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            decoded += exc.pos - position
            position = text.find("{", position + 1)
            continue
        except (RecursionError, ValueError) as exc:
            # Too deep, or a number longer than int() accepts: where it stopped is not known.
            too_deep = too_deep or isinstance(exc, RecursionError)
            decoded += len(text) - position
            position = text.find("{", position + 1)
            continue
        decoded += end - position
        found = _first_with_edits(value)
        if found is not None:
            return found, ""
        position = text.find("{", end)
    return None, "; some of it is nested too deeply to read" if too_deep else ""


def _unfence(text: str) -> str:
    # Not `\s*\n`: over a run of newlines it backtracks once per newline, each time scanning
    # to the end for a closing fence (quadratic: minutes on a reply of newlines).
    fenced = re.findall(r"```(?:json|JSON)?[^\S\n]*\n(.*?)```", text, flags=re.DOTALL)
    return "\n".join(fenced) if fenced else text


def _word(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ReplyRejected(f"`{field}` must be a non-empty string")
    word = value.strip().lower()
    return _SYNONYMS.get(word, word)


def parse_reply(text: str) -> Reply:
    """The one usable change in a model's reply, or ReplyRejected saying why not.

    Nothing else escapes, whatever `text` holds: a reply is untrusted input, and an exception
    here would lose the reply and the lesson with it.
    """
    try:
        return _parse(text)
    except ReplyRejected:
        raise
    except RecursionError:
        raise ReplyRejected("the reply is nested too deeply to read") from None
    except Exception as exc:
        # Defence in depth: a check below that trips over some input is still a reason.
        detail = storable(str(exc))[:200]
        reason = f"the reply could not be read ({type(exc).__name__}: {detail})"
        raise ReplyRejected(reason) from None


def _parse(text: str) -> Reply:
    if not text or not text.strip():
        raise ReplyRejected("the reply is empty")
    if len(text) > MAX_REPLY_CHARS:
        raise ReplyRejected(
            f"the reply is {len(text):,} characters long; at most {MAX_REPLY_CHARS:,} are read"
        )
    unfenced = _unfence(text)
    data, trouble = _with_edits(unfenced)
    if data is None and unfenced != text:
        data, trouble = _with_edits(text)
    if data is None:
        raise ReplyRejected(f"the reply holds no JSON object with `edits`{trouble}")
    target = data.get("target_file")
    if not isinstance(target, str) or not target.strip():
        raise ReplyRejected("`target_file` must name the file to change")
    if not _encodable(target):
        raise ReplyRejected("`target_file` is not valid Unicode (a lone surrogate)")
    change_type = _word(data.get("change_type"), "change_type")
    if change_type not in CHANGE_TYPES:
        raise ReplyRejected(
            f"`change_type` {_shown(change_type)} is not one of {', '.join(CHANGE_TYPES)}"
        )
    risk = _word(data.get("risk_level"), "risk_level")
    if risk not in ("low", "medium", "high"):
        raise ReplyRejected(f"`risk_level` {_shown(risk)} is not low, medium or high")
    edits_data = data.get("edits")
    if not isinstance(edits_data, list) or not edits_data:
        raise ReplyRejected("`edits` must be a non-empty list of {search, replace}")
    if len(edits_data) > MAX_EDITS:
        raise ReplyRejected(f"{len(edits_data)} edits; at most {MAX_EDITS} are accepted")
    edits = []
    for number, edit in enumerate(edits_data, 1):
        if not isinstance(edit, dict):
            raise ReplyRejected(f"edit {number} is not an object with search and replace")
        search, replace = edit.get("search"), edit.get("replace")
        if not isinstance(search, str) or not isinstance(replace, str):
            raise ReplyRejected(f"edit {number} needs `search` and `replace` strings")
        if search == replace:
            raise ReplyRejected(f"edit {number} replaces its search text with itself")
        path = edit.get("file", target)
        if not isinstance(path, str):
            raise ReplyRejected(f"edit {number} has a `file` that is not a string")
        # An edit is written to a UTF-8 file: a surrogate there would fail mid-change.
        if not all(_encodable(t) for t in (path, search, replace)):
            raise ReplyRejected(
                f"edit {number} holds text that is not valid Unicode (a lone surrogate)"
            )
        edits.append(Edit(path.strip(), search, replace))
    impact, rationale = data.get("impact", ""), data.get("rationale", "")
    return Reply(
        target_file=target.strip(),
        change_type=change_type,
        risk_level=Risk(risk),
        impact=storable(impact if isinstance(impact, str) else json.dumps(impact)),
        rationale=storable(rationale if isinstance(rationale, str) else json.dumps(rationale)),
        edits=edits,
    )
