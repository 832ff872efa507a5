"""Hot reload: the configuration and policy files are watched (watchfiles) and re-validated.

A valid change takes effect for the next cycle and an event says what changed; an invalid one
is rejected with its problems sent to clients and the log, and the daemon keeps the last good
configuration. SIGHUP asks for the same reload.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from overseer.config import OverseerConfig, load_config
from overseer.core.safety.policy import CompiledPolicy, load_policy

log = logging.getLogger(__name__)


@dataclass
class Reloaded:
    config: OverseerConfig
    policy: CompiledPolicy
    changes: list[str]


def load_both(
    config_path: Path | None, old: OverseerConfig, old_policy: CompiledPolicy
) -> Reloaded:
    """Load and validate; raises ProblemsError (with every problem) and changes nothing."""
    config = load_config(config_path)
    policy = load_policy(config.policy)
    return Reloaded(config, policy, differences(old, config, old_policy, policy))


def differences(
    old: OverseerConfig, new: OverseerConfig, old_policy: CompiledPolicy, new_policy: CompiledPolicy
) -> list[str]:
    changes = []
    if old_policy.version != new_policy.version:
        changes.append(f"policy {old_policy.version} → {new_policy.version}")
    if old_policy.autonomy != new_policy.autonomy:
        changes.append(f"autonomy {old_policy.autonomy.value} → {new_policy.autonomy.value}")
    for section in ("schedule", "approvers", "defaults", "git", "generators"):
        if getattr(old, section) != getattr(new, section):
            changes.append(f"{section} changed")
    if [t.model_dump() for t in old.targets] != [t.model_dump() for t in new.targets]:
        changes.append("targets changed")
    # A reload applies these to the cycles that start next; the rest of `daemon` waits.
    live = {"max_parallel_cycles"}
    if old.daemon.max_parallel_cycles != new.daemon.max_parallel_cycles:
        changes.append(
            f"daemon.max_parallel_cycles {old.daemon.parallel_cycles} → {new.daemon.parallel_cycles}"
        )
    if old.daemon.model_dump(exclude=live) != new.daemon.model_dump(exclude=live):
        changes.append("daemon changed (takes effect after a restart)")
    if old.notify != new.notify:
        changes.append(f"notify: {len(old.notify)} → {len(new.notify)} receiver(s)")
    if old.metrics != new.metrics:
        changes.append("metrics changed (takes effect after a restart)")
    if old.state_dir != new.state_dir:
        changes.append("state_dir changed (takes effect after a restart)")
    return changes


def watched_files(config_path: Path | None, config: OverseerConfig) -> list[Path]:
    files = [p.resolve() for p in (config_path, config.policy) if p is not None]
    return sorted(set(files))


async def watch(
    files: list[Path], on_change: Callable[[list[Path]], Awaitable[object]], stop: asyncio.Event
) -> None:
    """Call `on_change` whenever one of `files` is written, replaced or removed."""
    if not files:
        return
    from watchfiles import awatch

    wanted = {str(f) for f in files}
    directories = sorted({str(f.parent) for f in files if f.parent.exists()})
    async for changes in awatch(
        *directories,
        watch_filter=lambda _change, path: path in wanted,
        stop_event=stop,
        debounce=300,
        recursive=False,
    ):
        await on_change(sorted({Path(path) for _, path in changes}))
