"""The architecture, checked: the core loads no UI, server or scheduler, and the CLI's start
stays light."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


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


def test_the_tui_imports_nothing_from_the_core():
    modules = loaded_after("import overseer.tui.app")
    assert "textual" in modules
    assert not [m for m in modules if m.startswith("overseer.core")], sorted(
        m for m in modules if m.startswith("overseer.")
    )
    assert not [m for m in modules if m.startswith("overseer.daemon")]


def test_no_tui_module_names_the_core_in_its_source():
    import ast
    from pathlib import Path

    tui = Path(__file__).parents[1] / "src" / "overseer" / "tui"
    offenders = []
    for path in tui.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if n.startswith(("overseer.core", "overseer.daemon"))
            ]
    assert offenders == []


def test_a_client_command_finds_the_daemon_without_loading_the_configuration(tmp_path):
    """`overseer status --config FILE` needs only the socket the file names: no validation
    of the whole configuration (pydantic) on the way to the daemon."""
    config = tmp_path / "overseer.yaml"
    config.write_text("daemon:\n  socket: run/overseer.sock\ntargets: []\n")
    code = (
        "import sys, json; from pathlib import Path; from overseer.cli import Options; "
        f"p = Options(Path({str(config)!r}), None, None, False).socket_path; "
        "print(json.dumps([str(p), sorted(sys.modules)]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "OVERSEER_SOCKET"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    path, modules = json.loads(out.stdout)
    assert path == str((tmp_path / "run" / "overseer.sock").resolve())
    assert "pydantic" not in modules and "overseer.config" not in modules


def test_a_configuration_the_quick_reading_cannot_tell_is_loaded_as_usual(tmp_path):
    from overseer.locations import configured_socket

    for text, expected in (
        ("daemon:\n  socket: /s.sock\n", (True, Path("/s.sock"))),
        ("targets: []\n", (True, None)),
        ("", (True, None)),
        ("daemon: 3\n", (False, None)),
        ("daemon:\n  socket: [1]\n", (False, None)),
        ("daemon: [\n", (False, None)),
    ):
        path = tmp_path / "c.yaml"
        path.write_text(text)
        assert configured_socket(path) == expected, text
    assert configured_socket(tmp_path / "missing.yaml") == (False, None)
