"""Text from outside overseer, on a terminal: file names, reasons, commit subjects, test output
and model text are shown with their control characters visible, never acted on."""

from __future__ import annotations

import re
from typing import Any

# C0 and C1 control characters, DEL, and the Unicode bidirectional overrides: a file name or a
# reason holding them could move the cursor, rewrite the screen, set the clipboard (OSC 52) or
# make text read in another order. `_LINES` keeps newline and tab, for multi-line text.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROLS_BUT_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, lines: bool = False) -> str:
    """`text` safe for a terminal: every control character shown as an escape (`\\x1b`), never
    acted on. With `lines`, newlines and tabs stay (an output tail, a diff)."""
    return (_CONTROLS_BUT_LINES if lines else _CONTROLS).sub(_shown, text)


def visible_all(value: Any) -> Any:
    """`visible(…, lines=True)` for every string inside a JSON-like value (what the daemon sends
    a screen): a front end that shows it can then show anything."""
    if isinstance(value, str):
        return visible(value, lines=True)
    if isinstance(value, dict):
        return {k: visible_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [visible_all(v) for v in value]
    return value
