"""A model's reply, read forgivingly where that is safe and strictly where it matters.

Forgiving: the JSON object may be wrapped in a code fence or in prose, use `'` nowhere it
matters, and carry keys we do not use. Strict: the fields that decide what changes must be
there and of the right type, there must be at least one edit, and (applied later, by SAFETY)
each edit's search text must occur exactly once in its file. A reply that cannot be used says
why, and its raw text is kept with the attempt.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from overseer.core.candidate import Edit
from overseer.core.policy import Risk

CHANGE_TYPES = ("optimization", "bugfix", "feature", "quality")
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


def _objects(text: str) -> list[Any]:
    """Every JSON object that starts somewhere in `text` (outermost first)."""
    decoder = json.JSONDecoder()
    found = []
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def _unfence(text: str) -> str:
    fenced = re.findall(r"```(?:json|JSON)?\s*\n(.*?)```", text, flags=re.DOTALL)
    return "\n".join(fenced) if fenced else text


def _word(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ReplyRejected(f"`{field}` must be a non-empty string")
    word = value.strip().lower()
    return _SYNONYMS.get(word, word)


def parse_reply(text: str) -> Reply:
    """The one usable change in a model's reply, or ReplyRejected saying why not."""
    if not text or not text.strip():
        raise ReplyRejected("the reply is empty")
    candidates = [o for o in _objects(_unfence(text)) if "edits" in o] or _objects(text)
    candidates = [o for o in candidates if "edits" in o]
    if not candidates:
        raise ReplyRejected("the reply holds no JSON object with `edits`")
    data = candidates[0]
    target = data.get("target_file")
    if not isinstance(target, str) or not target.strip():
        raise ReplyRejected("`target_file` must name the file to change")
    change_type = _word(data.get("change_type"), "change_type")
    if change_type not in CHANGE_TYPES:
        raise ReplyRejected(
            f"`change_type` {change_type!r} is not one of {', '.join(CHANGE_TYPES)}"
        )
    risk = _word(data.get("risk_level"), "risk_level")
    if risk not in ("low", "medium", "high"):
        raise ReplyRejected(f"`risk_level` {risk!r} is not low, medium or high")
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
        edits.append(Edit(path.strip(), search, replace))
    impact, rationale = data.get("impact", ""), data.get("rationale", "")
    return Reply(
        target_file=target.strip(),
        change_type=change_type,
        risk_level=Risk(risk),
        impact=impact if isinstance(impact, str) else json.dumps(impact),
        rationale=rationale if isinstance(rationale, str) else json.dumps(rationale),
        edits=edits,
    )
