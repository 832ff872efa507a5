"""Confining a target's test run: it may write only in its worktree and its own temp directory.

A candidate's tests run code a generator wrote, as the user overseer runs as. SAFETY judges the
change's text; what that code does when it runs is out of its sight. Unconfined, a test could
move the target branch itself (`.git/refs/heads/main`), rewrite the policy, the history or the
bytecode cache, or delete the user's checkout. Linux's Landlock (5.13 and later) lets an
unprivileged process give up rights for itself and everything it starts, for good: here, the
rights to create, change, rename and delete files anywhere but beneath the directories named
(reading and running stay as they were). On kernels that offer it (Landlock ABI 6), the run
may also neither signal processes outside it (the daemon, the user's shell) nor connect to
their abstract Unix sockets.

The ruleset is built in the parent (opening paths, making the ruleset) and only applied in the
child between fork and exec, which must not allocate or import: two system calls.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from overseer.config import TargetConfig

log = logging.getLogger(__name__)

# linux/landlock.h. The system call numbers are the same on every architecture.
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38

WRITE_FILE = 1 << 1
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2: renaming and linking across directories
TRUNCATE = 1 << 14  # ABI 3
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

WRITES_V1 = (
    WRITE_FILE
    | REMOVE_DIR
    | REMOVE_FILE
    | MAKE_CHAR
    | MAKE_DIR
    | MAKE_REG
    | MAKE_SOCK
    | MAKE_FIFO
    | MAKE_BLOCK
    | MAKE_SYM
)
FILE_RIGHTS = WRITE_FILE | TRUNCATE  # the rights a rule on a file (not a directory) may grant

#: Always writable: device files (/dev/null, a terminal; DAC still decides) and POSIX shared
#: memory (/dev/shm: multiprocessing's semaphores).
ALWAYS_WRITABLE = (Path("/dev"),)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


# libc's functions, looked up once in this process: the child calls them without a lookup.
_calls: tuple[Callable[..., int], Callable[..., int]] | None = None


def _libc() -> tuple[Callable[..., int], Callable[..., int]]:
    """(syscall, prctl)."""
    global _calls
    if _calls is None:
        libc = ctypes.CDLL(None, use_errno=True)
        _calls = (libc.syscall, libc.prctl)
    return _calls


def _syscall() -> Callable[..., int]:
    return _libc()[0]


def libc_prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up now, in the parent (a child forked from a threaded process must
    not load anything before it execs); None where there is no such C library."""
    try:
        return _libc()[1]
    except (OSError, AttributeError):
        return None


def abi() -> tuple[int, str]:
    """(Landlock ABI version, "") or (0, why there is none here)."""
    if not sys.platform.startswith("linux"):
        return 0, f"Landlock is Linux's; this is {sys.platform}"
    try:
        version = _syscall()(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), CREATE_RULESET_VERSION)
    except (OSError, AttributeError) as exc:
        return 0, f"the C library cannot make system calls here ({exc})"
    if version < 0:
        errno = ctypes.get_errno()
        why = {
            38: "the kernel has no Landlock (Linux 5.13 or later, built with it)",
            95: "Landlock is built into the kernel but turned off (boot with lsm=…,landlock)",
            1: "a seccomp filter refuses Landlock's system calls (systemd's SystemCallFilter?)",
        }.get(errno, os.strerror(errno))
        return 0, why
    return int(version), ""


@dataclass(frozen=True)
class Confinement:
    """A ruleset ready to apply in a child: `apply` is its preexec step."""

    fd: int
    version: int
    writable: tuple[str, ...]  # what the run may write beneath, for the record

    def apply(self) -> None:
        """In the child, between fork and exec: no new privileges, then the ruleset. A failure
        raises, and the child never runs the command unconfined (subprocess reports it)."""
        syscall, prctl = _libc()
        if prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if syscall(SYS_RESTRICT_SELF, self.fd, 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class ConfinementUnavailable(Exception):
    """Landlock cannot be used here; the message says why."""


def prepare(writable: Sequence[Path]) -> Confinement:
    """A ruleset that lets a process write beneath `writable` (and ALWAYS_WRITABLE) only.
    Paths that do not exist are left out. The caller closes it (`close`) once the child runs."""
    version, why = abi()
    if not version:
        raise ConfinementUnavailable(why)
    syscall = _syscall()
    handled = WRITES_V1 | (REFER if version >= 2 else 0) | (TRUNCATE if version >= 3 else 0)
    attr = _RulesetAttr(handled, 0, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL)
    # An older kernel reads only the fields it knows, and refuses non-zero ones it does not.
    size = ctypes.sizeof(_RulesetAttr) if version >= 6 else 8
    fd = syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)
    if fd < 0:
        raise ConfinementUnavailable(
            f"landlock_create_ruleset failed: {os.strerror(ctypes.get_errno())}"
        )
    granted: list[str] = []
    try:
        for path in dict.fromkeys([*ALWAYS_WRITABLE, *writable]):
            try:
                beneath = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # not there: nothing to write beneath
            try:
                is_dir = Path(f"/proc/self/fd/{beneath}").is_dir()
                allowed = handled if is_dir else handled & FILE_RIGHTS
                rule = _PathBeneathAttr(allowed, beneath)
                if syscall(SYS_ADD_RULE, fd, RULE_PATH_BENEATH, ctypes.byref(rule), 0) != 0:
                    raise ConfinementUnavailable(
                        f"landlock_add_rule for {path} failed: {os.strerror(ctypes.get_errno())}"
                    )
            finally:
                os.close(beneath)
            if path not in ALWAYS_WRITABLE:
                granted.append(str(path))
    except BaseException:
        os.close(fd)
        raise
    return Confinement(fd, version, tuple(granted))


def unconfined_because(target: TargetConfig) -> str | None:
    """Why the target's test runs are not confined on this machine, None when they are: for
    `overseer status`, which says what is off."""
    if target.confine_tests is False:
        return "confine_tests: false"
    version, why = abi()
    if version:
        return None
    return why + ("; no test runs (confine_tests: true)" if target.confine_tests is True else "")


_warned_unconfined = False
#: How the record of a confined run begins (`for_run`); what follows says where it may write.
CONFINED = "writes only in "


def for_run(
    target: TargetConfig,
    tree: Path,
    temp: Path,
    env: dict[str, str],
    outputs: Sequence[Path] = (),
    venv: Path | None = None,
) -> tuple[Confinement | None, str]:
    """The confinement of a target's command (tests, benchmark) run in `tree`, and what to
    record of it. Confined, the command writes beneath its worktree, `temp` (made here, and its
    TMPDIR in `env`), the directories it reports into (`outputs`) and the target's
    `writable_paths`, and `venv` when given: a run of accepted code (a baseline) may write
    there what Python and pytest cache beside the modules they import (compiled files, the
    plugins' rewritten asserts), as the user's own test run would; a candidate's run may not.
    None, with why not, when it is not confined: the caller refuses to run it when the target
    says `confine_tests: true`."""
    global _warned_unconfined
    if target.confine_tests is False:
        return None, "not confined (confine_tests: false)"
    temp.mkdir(exist_ok=True)
    try:
        confinement = prepare(
            [tree, temp, *outputs, *target.writable_paths, *([venv] if venv else [])]
        )
    except ConfinementUnavailable as exc:
        why = f"not confined: {exc}"
        if target.confine_tests == "auto" and not _warned_unconfined:
            _warned_unconfined = True
            log.warning("test runs are %s; they may write anywhere this user may", why)
        return None, why
    env["TMPDIR"] = str(temp)
    extra = [str(p) for p in target.writable_paths if str(p) in confinement.writable]
    if venv is not None and str(venv) in confinement.writable:
        extra.append(f"the target's {venv.name}")
    where = "its worktree, its own temp directory" + "".join(f", {p}" for p in extra)
    return confinement, f"{CONFINED}{where} (Landlock ABI {confinement.version})"
