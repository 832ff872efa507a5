"""What the daemon does about the host's limits: open files, memory, and log lines that a flood
would otherwise multiply.

- The soft open-file limit is raised to the hard one at start: systemd's default soft limit
  (1024) is what a flood of idle connections used to exhaust, failing the running cycle's git
  commands; `daemon.max_connections` stays far below the raised limit.
- Memory a burst of clients made the allocator take is given back when they are gone: Python
  frees the objects, but glibc keeps the freed heap unless asked (`malloc_trim`).
- A condition that can repeat thousands of times a second (accept failing for want of
  descriptors, refused connections) is logged once per interval, with the count in between.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import gc
import logging
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: errors that say the process or the system is out of something a connection needs
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the (soft, hard) in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # a sandbox may refuse: keep what we have
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, exc)
        else:
            soft = hard
    return soft, hard


def open_file_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None (musl and others have none; nothing to do there)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


def resident_mb() -> float:
    """This process's resident memory (RSS), in MB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * resource.getpagesize() / 1024 / 1024


def give_back_memory() -> tuple[float, float]:
    """Collect garbage, then return the allocator's free memory to the system; the RSS before
    and after, in MB. Blocking for a few milliseconds; ctypes releases the GIL while
    malloc_trim runs."""
    before = resident_mb()
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
    return before, resident_mb()


class Throttled:
    """A log line about one recurring condition at most once per `every` seconds; the next
    line says how many times it happened in between."""

    def __init__(self, logger: logging.Logger, every: float) -> None:
        self.logger = logger
        self.every = every
        self._last: float | None = None
        self.suppressed = 0

    def __call__(self, level: int, message: str, *args: Any) -> None:
        now = time.monotonic()
        last = self._last
        if last is not None and now - last < self.every:
            self.suppressed += 1
            return
        if last is not None and self.suppressed:
            message += f" ({self.suppressed} more like it in the last {now - last:.0f} s)"
        self._last = now
        self.suppressed = 0
        self.logger.log(level, message, *args)
