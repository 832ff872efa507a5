"""One process at a time per target: a cycle, an approval or a rollback holds the target's lock.

An advisory `flock` on a file in the state directory; the kernel drops it when the holder dies,
so a SIGKILLed run never leaves a stale lock, and start-up recovery can trust that whatever
it finds in progress has no live owner.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType


class TargetBusy(Exception):
    pass


class TargetLock:
    def __init__(self, path: Path, *, wait: float = 0.0) -> None:
        self.path = path
        self.wait = wait
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
                        f"another overseer process (pid {holder}) is working on this target "
                        f"({self.path.stem}); try again when it has finished"
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
