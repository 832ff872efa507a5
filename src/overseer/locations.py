"""Where overseer keeps its state: one directory for the history database, worktrees and locks.

Resolution order for the state directory: the --state-dir flag, $OVERSEER_STATE_DIR, the
config's `state_dir`, systemd's $STATE_DIRECTORY, then $XDG_STATE_HOME/overseer (by default
~/.local/state/overseer). One state directory can serve several target repositories.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def resolve_state_dir(flag: Path | None, configured: Path | None) -> Path:
    if flag is not None:
        return flag.expanduser().resolve()
    if env := os.environ.get("OVERSEER_STATE_DIR"):
        return Path(env).expanduser().resolve()
    if configured is not None:
        return configured
    if systemd := os.environ.get("STATE_DIRECTORY"):
        return Path(systemd.split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "overseer"


@dataclass(frozen=True)
class StateDir:
    root: Path

    @property
    def database(self) -> Path:
        return self.root / "history.sqlite3"

    @property
    def worktrees(self) -> Path:
        return self.root / "worktrees"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    def ensure(self) -> StateDir:
        for directory in (self.root, self.worktrees, self.locks):
            directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        return self
