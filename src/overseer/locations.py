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


SOCKET_NAME = "overseer.sock"


def socket_candidates() -> list[Path]:
    """Where a daemon may listen, in order: systemd's RuntimeDirectory, the user's runtime
    directory, the system one (/run/overseer), and a per-user directory in /tmp."""
    found = []
    if runtime := os.environ.get("RUNTIME_DIRECTORY"):
        found.append(Path(runtime.split(":")[0]) / SOCKET_NAME)
    if xdg := os.environ.get("XDG_RUNTIME_DIR"):
        found.append(Path(xdg) / "overseer" / SOCKET_NAME)
    found.append(Path("/run/overseer") / SOCKET_NAME)
    found.append(Path(f"/tmp/overseer-{os.getuid()}") / SOCKET_NAME)
    return found


def configured_socket(config_path: Path) -> tuple[bool, Path | None]:
    """`daemon.socket` of a configuration file, read without validating the rest (a client
    that only connects to the daemon should not pay for the whole configuration): (True,
    the path, relative to the file as the configuration resolves it, or None when the file
    sets none), or (False, None) when this quick reading cannot tell (no file, not YAML, a
    value of another type): then the configuration is loaded and its problems said as usual."""
    import yaml

    unknown: tuple[bool, Path | None] = (False, None)
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(config_path.read_text(encoding="utf-8"), Loader=loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return unknown
    if data is None:
        return True, None
    if not isinstance(data, dict):
        return unknown
    daemon = data.get("daemon")
    if daemon is None:
        return True, None
    if not isinstance(daemon, dict):
        return unknown
    socket = daemon.get("socket")
    if socket is None:
        return True, None
    if not isinstance(socket, str) or not socket:
        return unknown
    path = Path(socket).expanduser()
    return True, path if path.is_absolute() else (config_path.resolve().parent / path).resolve()


def resolve_socket(flag: Path | None, configured: Path | None, *, for_daemon: bool) -> Path:
    """The socket a daemon listens on, or a client connects to.

    --socket, then $OVERSEER_SOCKET, then the config's `daemon.socket`; otherwise a daemon
    takes the first of `socket_candidates()` it may use (/run/overseer only as root), and a
    client takes the first where a socket exists (so a user finds the system daemon).
    """
    if flag is not None:
        return flag.expanduser().resolve()
    if env := os.environ.get("OVERSEER_SOCKET"):
        return Path(env).expanduser().resolve()
    if configured is not None:
        return configured
    candidates = socket_candidates()
    if for_daemon:
        usable = [c for c in candidates if c.parent != Path("/run/overseer") or os.getuid() == 0]
        return usable[0]
    for candidate in candidates:
        try:
            if candidate.exists():
                return candidate
        except PermissionError:  # there, in a directory closed to this user: the daemon's
            return candidate  # connecting says whom to ask (its socket group)
    return candidates[0]


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
    def bytecode(self) -> Path:
        """Compiled Python of the targets' test runs, kept by content (one directory each)."""
        return self.root / "bytecode"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def started(self) -> Path:
        """Records of the process groups overseer started and has not seen end."""
        return self.root / "started"

    def has_database(self) -> bool:
        """Whether the history database is there, for a reader: False when there is none
        yet; StateDirUnusable when the directory cannot be looked into (closed to this user,
        below a file), which is not the same as having no history."""
        try:
            if self.database.exists():
                return True
        except PermissionError:
            raise StateDirUnusable(
                f"the state directory {self.root} cannot be read: permission denied (ask its "
                "owner for read access to it, e.g. membership of its group, or choose another "
                "--state-dir)"
            ) from None
        blocker = _file_above(self.root)
        if blocker is not None:
            raise self._below_a_file(blocker)
        return False

    def _below_a_file(self, blocker: Path) -> StateDirUnusable:
        return StateDirUnusable(
            f"the state directory {self.root} cannot be used: part of it ({blocker}) is a "
            "file, not a directory (choose another --state-dir or OVERSEER_STATE_DIR)"
        )

    def ensure(self) -> StateDir:
        for directory in (self.root, self.worktrees, self.locks, self.started):
            try:
                directory.mkdir(parents=True, exist_ok=True, mode=0o750)
            except (FileExistsError, NotADirectoryError):
                raise self._below_a_file(_file_above(directory) or directory) from None
            except PermissionError:
                raise StateDirUnusable(
                    f"the state directory {self.root} cannot be used: permission denied "
                    f"creating {directory} (run as its owner, or choose another --state-dir)"
                ) from None
            except OSError as exc:
                raise StateDirUnusable(
                    f"the state directory {self.root} cannot be used: {exc.strerror} ({directory})"
                ) from None
        return self


class StateDirUnusable(Exception):
    """The state directory cannot be made or written; the message says why and what to do."""


def _file_above(path: Path) -> Path | None:
    """The nearest of `path` and its parents that exists, if it is not a directory."""
    for candidate in (path, *path.parents):
        try:
            if candidate.exists():
                return None if candidate.is_dir() else candidate
        except OSError:
            return None
    return None
