"""Path globs for policies: `*` within a segment, `**` across segments, no-slash = any depth.

`*.lock` protects every lock file wherever it sits; `src/app/**` protects a tree; a pattern
with a slash is anchored at the repository root, like .gitignore.
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    anchored = "/" in pattern.rstrip("/")
    body = pattern.strip("/")
    out = []
    i = 0
    while i < len(body):
        if body.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif body.startswith("**", i):
            out.append(".*")
            i += 2
        elif body[i] == "*":
            out.append("[^/]*")
            i += 1
        elif body[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(body[i]))
            i += 1
    prefix = "" if anchored else "(?:.*/)?"
    # A pattern naming a directory also covers everything inside it.
    return re.compile(prefix + "".join(out) + "(?:/.*)?")


def glob_match(pattern: str, path: str) -> bool:
    return compile_glob(pattern).fullmatch(path.lstrip("/")) is not None


def first_match(patterns: list[str] | tuple[str, ...], path: str) -> str | None:
    for pattern in patterns:
        if glob_match(pattern, path):
            return pattern
    return None
