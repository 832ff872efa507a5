"""The systemd units pass `systemd-analyze verify` with nothing at all on stderr, are hardened
to an exposure level of 3.0 (system) and 5.0 (user) or less, and name no path that must exist.

verify exits 0 even on unknown keys, so any output on stderr fails the test. It also checks
that ExecStart's program exists, so the copies verified here point at this checkout's overseer.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.helpers import ROOT, short_dir

OVERSEER = Path(sys.executable).parent / "overseer"


UNITS = [
    ("systemd/overseer.service", "/usr/local/bin/overseer", False),
    ("systemd/user/overseer.service", "%h/.local/bin/overseer", True),
]
# The most exposure `systemd-analyze security` may find (0 is the safest, 10 the least safe).
EXPOSURE = {"systemd/overseer.service": 3.0, "systemd/user/overseer.service": 5.0}


def analyze(*args: str, user: bool) -> subprocess.CompletedProcess[str]:
    program = shutil.which("systemd-analyze")
    assert program, "systemd-analyze is needed (Debian package systemd)"
    # A short runtime directory: systemd derives socket paths from it (108-byte limit).
    with short_dir() as runtime:
        runtime.chmod(0o700)
        env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
        command = [program, *(["--user"] if user else []), *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def verify(unit: Path, *, user: bool, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return analyze("verify", str(unit), user=user)


def installed_copy(source: Path, tmp_path: Path, program: str) -> Path:
    text = source.read_text()
    assert program in text
    copy = tmp_path / "overseer.service"
    copy.write_text(text.replace(program, str(OVERSEER)))
    return copy


@pytest.mark.parametrize(("unit", "program", "user"), UNITS)
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
    settings = [line for line in text.splitlines() if not line.startswith("#")]
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "RuntimeDirectory=overseer",
        "StateDirectory=overseer",
        "User=overseer",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "SystemCallFilter=@system-service",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "LimitNOFILE=",
    ):
        assert any(kept.startswith(line) for kept in settings), line


def exposure(unit: Path, *, user: bool) -> float:
    """The overall exposure level `systemd-analyze security` gives the unit file."""
    result = analyze("security", "--offline=yes", str(unit), user=user)
    if "--offline" in result.stderr and result.returncode != 0:
        pytest.skip(
            f"this systemd-analyze has no --offline (systemd 250 or newer does): {result.stderr.strip()}"
        )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    return float(found.group(1))


@pytest.mark.parametrize(("unit", "program", "user"), UNITS)
def test_units_are_hardened(tmp_path, unit, program, user):
    """`systemd-analyze security --offline=yes` (docs/systemd.md has the figures and what is
    left open on purpose)."""
    level = exposure(installed_copy(ROOT / unit, tmp_path, program), user=user)
    assert level <= EXPOSURE[unit], f"{unit}: exposure {level} > {EXPOSURE[unit]}"


def test_the_exposure_check_itself_sees_a_weaker_unit(tmp_path):
    copy = installed_copy(
        ROOT / "systemd/user/overseer.service", tmp_path, "%h/.local/bin/overseer"
    )
    hardened = exposure(copy, user=True)
    text = copy.read_text()
    copy.write_text(text[: text.index("PrivateUsers=yes")] + text[text.index("[Install]") :])
    assert exposure(copy, user=True) > max(hardened, EXPOSURE["systemd/user/overseer.service"])


@pytest.mark.parametrize(("unit", "program", "user"), UNITS)
def test_no_path_the_host_may_lack_stops_a_unit(unit, program, user):
    """A path in ReadWritePaths= and its kin that does not exist stops the unit from starting
    (a placeholder such as /srv/myservice did): the units name none, or only with `-`."""
    paths = re.compile(
        r"^(ReadWritePaths|ReadOnlyPaths|InaccessiblePaths|ExecPaths|NoExecPaths|BindPaths|BindReadOnlyPaths)=(.*)$"
    )
    for line in (ROOT / unit).read_text().splitlines():
        if found := paths.match(line):
            for path in found.group(2).split():
                assert path.startswith(("-", "%")), f"{unit}: {line}"


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


def test_both_units_let_test_runs_confine_themselves():
    """Every system call confine.py makes is one the unit's SystemCallFilter= lines allow,
    groups expanded by systemd-analyze itself: a refused one would leave the test runs
    unconfined (`auto`) or not run at all (`true`)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("no systemd-analyze here")
    needed = {"landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self", "prctl"}

    def expand(group: str, seen: set[str]) -> set[str]:
        if group in seen:
            return set()
        seen.add(group)
        listed = subprocess.run(
            ["systemd-analyze", "syscall-filter", group], capture_output=True, text=True, check=True
        ).stdout
        calls: set[str] = set()
        for line in listed.splitlines()[1:]:
            name = line.strip()
            if not line.startswith("    ") or not name or name.startswith("#"):
                continue
            calls |= expand(name, seen) if name.startswith("@") else {name}
        return calls

    for unit in ("systemd/overseer.service", "systemd/user/overseer.service"):
        allowed: set[str] = set()
        for line in (ROOT / unit).read_text().splitlines():
            if not line.startswith("SystemCallFilter="):
                continue
            for name in line.removeprefix("SystemCallFilter=").split():
                assert not name.startswith("~"), f"{unit}: a deny list: {line}"
                allowed |= expand(name, set()) if name.startswith("@") else {name}
        assert needed <= allowed, (unit, needed - allowed)
