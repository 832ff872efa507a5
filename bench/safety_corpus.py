"""The safety figures: the adversarial corpus through SAFETY, counted.

    .venv/bin/python bench/safety_corpus.py

Every entry of tests/support/adversarial.py (hostile paths, symlink escapes, git internals,
huge content, edits that miss or match twice, results that do not parse, protected paths,
oversized changes, changes that weaken the tests) is judged under the most permissive policy
at every autonomy level and every full_max_auto_risk. Printed per level: how many were stopped
(denied, or held for a human because of what they do), with the right reason, and how many
escaped (were allowed, or wrote anything anywhere). Escapes must be 0 at every level.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from summary import record  # noqa: E402
from support.adversarial import LEVELS, Harness  # noqa: E402


def main() -> int:
    os.environ.setdefault("GIT_CONFIG_GLOBAL", "/dev/null")
    root = Path(tempfile.mkdtemp(prefix="overseer-safety-"))
    try:
        outcomes, untouched = Harness(root).run()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    entries = [o for o in outcomes if o.level == LEVELS[0][0]]
    kinds = Counter(o.entry.name.split(" (")[0].rstrip("0123456789 ") for o in entries)
    print(f"adversarial corpus: {len(entries)} candidates in {len(kinds)} kinds, at each level")
    print(
        f"  {'level':<12} {'stopped':>8} {'denied':>7} {'held':>5} {'right reason':>13} {'escapes':>8}"
    )
    total_escapes = 0 if untouched else 1
    all_right = True
    for level, _ in LEVELS:
        mine = [o for o in outcomes if o.level == level]
        stopped = sum(o.stopped for o in mine)
        held = sum(o.decision == "needs_approval" for o in mine)
        right = sum(o.stopped and o.right_reason for o in mine)
        escapes = len(mine) - stopped
        total_escapes += escapes
        all_right = all_right and right == len(mine)
        print(f"  {level:<12} {stopped:>8} {stopped - held:>7} {held:>5} {right:>13} {escapes:>8}")
    print(f"  files written anywhere: {'none' if untouched else 'SOME'}")
    print(f"  escapes in all:         {total_escapes}")
    record(
        "adversarial candidates stopped",
        f"{len(entries)} × {len(LEVELS)} levels ({len(kinds)} kinds)",
    )
    record("escapes", str(total_escapes), "0", total_escapes == 0)
    return 0 if total_escapes == 0 and all_right else 1


if __name__ == "__main__":
    sys.exit(main())
