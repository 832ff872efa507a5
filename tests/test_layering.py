"""The architecture, checked: the core loads no UI, server or scheduler, and the CLI's start
stays light."""

from __future__ import annotations

import json
import subprocess
import sys


def loaded_after(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_the_core_imports_no_textual_scheduler_or_socket_server():
    modules = loaded_after(
        "import overseer.core.cycle, overseer.core.actions, overseer.core.recovery, overseer.runtime"
    )
    for heavy in (
        "textual",
        "apscheduler",
        "asyncio.unix_events",
        "socketserver",
        "sklearn",
        "ctransformers",
    ):
        assert not any(m == heavy or m.startswith(heavy + ".") for m in modules), heavy


def test_the_command_line_starts_without_heavy_imports():
    modules = loaded_after("import overseer.cli")
    for heavy in (
        "git",
        "sqlite_utils",
        "pydantic",
        "yaml",
        "apscheduler",
        "textual",
        "sklearn",
        "overseer.core.cycle",
    ):
        assert heavy not in modules, heavy
