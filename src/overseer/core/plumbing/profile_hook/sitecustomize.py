"""Put first on PYTHONPATH by overseer to profile a benchmark command (analyze/profile.py),
whatever the command is: `python bench.py`, `make bench`, a shell script, `pytest
benchmarks/`. Python imports `sitecustomize` at start-up, before the program, so every Python
process the command starts runs under cProfile from start to exit and, at exit, writes the
project's own functions it spent time in (overseer_hot.py, beside the pytest plugins, also on
PYTHONPATH) to OVERSEER_PROFILE_DIR/<pid>.json; overseer adds the processes up. The script a
process ran (`python bench.py`) is the benchmark, not what to change: it is left out.

It runs in the target's interpreter: the standard library only. The `sitecustomize` it hides
(a distribution's, a virtualenv's), if any, runs first, as it would have. A process that ends
without its exit handlers (os._exit, a signal) writes nothing; that is all it costs.
"""

from __future__ import annotations

import atexit
import cProfile
import importlib.machinery
import importlib.util
import json
import os
import sys


def _run_the_hidden_one() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    try:
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
        if spec is not None and spec.loader is not None:
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except Exception as exc:  # as Python says of a failing sitecustomize, and goes on
        print(f"Error in sitecustomize; set PYTHONVERBOSE for traceback: {exc!r}", file=sys.stderr)


def _write(profile: cProfile.Profile, out: str, root: str) -> None:
    profile.disable()
    try:
        from overseer_hot import hot_functions  # type: ignore[import-not-found]

        main = getattr(sys.modules.get("__main__"), "__file__", None)
        hot = hot_functions(profile, root, skip=[main] if main else [])
        with open(os.path.join(out, f"{os.getpid()}.json"), "w", encoding="utf-8") as f:
            json.dump({"argv": sys.argv[:4], "hot": hot}, f)
    except Exception as exc:  # never the benchmark's failure: said, and nothing written
        print(f"overseer could not write this process's profile: {exc!r}", file=sys.stderr)


_run_the_hidden_one()
_OUT = os.environ.get("OVERSEER_PROFILE_DIR")
_ROOT = os.environ.get("OVERSEER_PROFILE_ROOT")
if _OUT and _ROOT:
    _PROFILE = cProfile.Profile()
    atexit.register(_write, _PROFILE, _OUT, _ROOT)
    _PROFILE.enable()
