"""The safety figures: the adversarial corpus through SAFETY, counted.

    .venv/bin/python bench/safety_corpus.py

Every entry of tests/adversarial.py (hostile paths, symlink escapes, git internals, binary and
huge content, edits that miss or match twice, results that do not parse, protected paths,
oversized changes, changes that weaken the tests) is judged under the most permissive policy
(autonomy full). Printed: how many there are, how many were stopped with the right reason, and
how many escaped (were allowed, or wrote anything anywhere). Escapes must be 0.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from adversarial import Harness  # noqa: E402
from summary import record  # noqa: E402


def main() -> int:
    os.environ.setdefault("GIT_CONFIG_GLOBAL", "/dev/null")
    root = Path(tempfile.mkdtemp(prefix="overseer-safety-"))
    try:
        outcomes, untouched = Harness(root).run()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    kinds = Counter(o.entry.name.split(" (")[0].rstrip("0123456789 ") for o in outcomes)
    stopped = sum(o.stopped for o in outcomes)
    right = sum(o.stopped and o.right_reason for o in outcomes)
    held = sum(o.decision == "needs_approval" for o in outcomes)
    escapes = (len(outcomes) - stopped) + (0 if untouched else 1)
    print(f"adversarial corpus: {len(outcomes)} candidates in {len(kinds)} kinds")
    print(
        f"  stopped:              {stopped} ({stopped - held} denied, {held} held for a human at high risk)"
    )
    print(f"  with the right reason: {right}")
    print(f"  files written anywhere: {'none' if untouched else 'SOME'}")
    print(f"  escapes:              {escapes}")
    record("adversarial candidates stopped", f"{stopped} of {len(outcomes)} ({len(kinds)} kinds)")
    record("escapes", str(escapes), "0", escapes == 0)
    return 0 if escapes == 0 and right == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
