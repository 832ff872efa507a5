"""One process at a time per repository, and one overseer per repository.

A cycle, an approval or a rollback holds the target's lock: an advisory `flock` on a file in
the repository's own git directory (its common directory, shared by all its worktrees), so two
overseer processes with different state directories still take turns. The kernel drops it
when the holder dies, so a SIGKILLed run never leaves a stale lock, and start-up recovery can
trust that whatever it finds in progress has no live owner.

The repository also records which state directory supervises it (`overseer-owner.json` next
to the lock). Another overseer — another state directory — is told which one and touches
nothing: it would take the first one's `overseer/*` branches for strays of its own.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from types import TracebackType


class TargetBusy(Exception):
    pass


class RepositoryOwned(TargetBusy):
    """Another overseer (another state directory) supervises this repository."""


OWNER_FILE = "overseer-owner.json"


class TargetLock:
    def __init__(
        self,
        path: Path,
        *,
        wait: float = 0.0,
        state_root: Path | None = None,
        what: str = "this target",
    ) -> None:
        """`state_root`: the state directory acting; when given, the repository must be its
        own (or no one's yet, then it becomes its own). `what` is locked, for the message."""
        self.path = path
        self.what = what
        self.wait = wait
        self.state_root = state_root
        self._fd: int | None = None

    def __enter__(self) -> TargetLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                    os.close(fd)
                    raise TargetBusy(
                        f"another overseer process (pid {holder}) is working on {self.what} "
                        f"({self.path.parent}); try again when it has finished"
                    ) from None
                time.sleep(0.1)
        try:
            # Only to name the holder in TargetBusy: a full disk must not leave the lock taken
            # by a file descriptor no one will close.
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError:
            pass
        self._fd = fd
        if self.state_root is not None:
            try:
                claim(self.path.parent / OWNER_FILE, self.state_root)
            except BaseException:
                self.__exit__(None, None, None)
                raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def claim(owner_file: Path, state_root: Path) -> None:
    """Make the repository this state directory's, unless another's that still exists."""
    mine = str(state_root.resolve())
    try:
        owner = json.loads(owner_file.read_text())
        theirs = str(owner["state_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        owner, theirs = None, None
    if theirs == mine:
        return
    if theirs is not None and Path(theirs).is_dir():
        raise RepositoryOwned(
            f"{owner_file.parent} is supervised by the overseer whose state directory is "
            f"{theirs} (since {owner.get('since', '?') if owner else '?'}); nothing was done. "
            f"Use --state-dir {theirs} (or OVERSEER_STATE_DIR), or, if that overseer is gone "
            f"for good, delete {owner_file}"
        )
    # No one's, or its state directory is gone: this one takes it over.
    owner_file.write_text(
        json.dumps(
            {
                "state_dir": mine,
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "previous": theirs,
            }
        )
    )
