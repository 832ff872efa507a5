"""The systemd units pass `systemd-analyze verify` with nothing at all on stderr.

verify exits 0 even on unknown keys, so any output on stderr fails the test. It also checks
that ExecStart's program exists, so the copies verified here point at this checkout's overseer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.helpers import ROOT, short_dir

OVERSEER = Path(sys.executable).parent / "overseer"


def verify(unit: Path, *, user: bool, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed (Debian package systemd)"
    # A short runtime directory: systemd derives socket paths from it (108-byte limit).
    with short_dir() as runtime:
        runtime.chmod(0o700)
        env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
        args = [analyze, *(["--user"] if user else []), "verify", str(unit)]
        return subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)


def installed_copy(source: Path, tmp_path: Path, program: str) -> Path:
    text = source.read_text()
    assert program in text
    copy = tmp_path / "overseer.service"
    copy.write_text(text.replace(program, str(OVERSEER)))
    return copy


@pytest.mark.parametrize(
    ("unit", "program", "user"),
    [
        ("systemd/overseer.service", "/usr/local/bin/overseer", False),
        ("systemd/user/overseer.service", "%h/.local/bin/overseer", True),
    ],
)
def test_units_verify_cleanly(tmp_path, unit, program, user):
    result = verify(installed_copy(ROOT / unit, tmp_path, program), user=user, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_the_check_itself_catches_a_misspelt_key(tmp_path):
    copy = installed_copy(ROOT / "systemd/overseer.service", tmp_path, "/usr/local/bin/overseer")
    copy.write_text(copy.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    result = verify(copy, user=False, tmp_path=tmp_path)
    assert "Unknown key" in result.stderr and "NoNewPrivilege" in result.stderr


def test_the_system_unit_has_what_the_service_needs():
    text = (ROOT / "systemd/overseer.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "RuntimeDirectory=overseer",
        "StateDirectory=overseer",
        "User=overseer",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=",
        "PrivateTmp=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "LimitNOFILE=",
    ):
        assert line in text, line


def test_both_units_let_the_daemon_raise_its_open_file_limit():
    from overseer.config import DaemonSettings

    defaults = DaemonSettings()
    connections = defaults.max_connections + defaults.reserved_for_approvers
    for unit in ("systemd/overseer.service", "systemd/user/overseer.service"):
        [limit] = [
            x for x in (ROOT / unit).read_text().splitlines() if x.startswith("LimitNOFILE=")
        ]
        soft, hard = (int(n) for n in limit.removeprefix("LimitNOFILE=").split(":"))
        # The hard limit is what the daemon raises itself to: far above the connections.
        assert soft <= hard and hard >= 10 * connections, (unit, limit)
