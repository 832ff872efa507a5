"""`overseer …`: thin commands over the core. Logging is configured here and only here.

Exit status: 0 when the command did its job (a cycle ran, whatever its outcome), 1 when it
could not (bad configuration, a refused action, a failed cycle), 2 for a usage error.
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from overseer.config import OverseerConfig, load_config
from overseer.core.yamlfile import ProblemsError

log = logging.getLogger("overseer")


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "at": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data)


def configure_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    else:  # journald and pipes get one JSON object per line
        handler.setFormatter(JsonLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"overseer: {message}", err=True)
    sys.exit(code)


class Interrupted(BaseException):
    """SIGTERM, raised in the main thread so that the attempt records where it stopped."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Interrupted(f"signal {signum}")


def common(func: Callable[..., Any]) -> Callable[..., Any]:
    """--config, --state-dir and --debug on every command (and their environment variables).

    The command receives the loaded configuration; a broken one stops here with its problems.
    """

    @click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="OVERSEER_CONFIG",
        help="Configuration file (default: the embedded defaults). Env: OVERSEER_CONFIG.",
    )
    @click.option(
        "--state-dir",
        type=click.Path(path_type=Path, file_okay=False),
        envvar="OVERSEER_STATE_DIR",
        help="History database and worktrees. Env: OVERSEER_STATE_DIR.",
    )
    @click.option("--debug", is_flag=True, help="Verbose logging and phase progress.")
    @functools.wraps(func)
    def wrapper(config_path: Path | None, state_dir: Path | None, debug: bool, **kw: Any) -> Any:
        configure_logging(debug)
        try:
            config = load_config(config_path)
        except ProblemsError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            fail(f"the configuration has {len(exc.problems)} problem(s); nothing was done")
        return func(config=config, state_dir=state_dir, debug=debug, **kw)

    return wrapper


def runtime_for(config: OverseerConfig, state_dir: Path | None):  # type: ignore[no-untyped-def]
    from overseer.runtime import Runtime

    try:
        return Runtime.create(config, state_dir)
    except ProblemsError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        fail(f"the policy has {len(exc.problems)} problem(s); nothing was done")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="overseer")
def main() -> None:
    """Supervised, autonomous code-improvement cycles on git repositories."""


@main.command()
@common
@click.option(
    "--once", is_flag=True, help="Run one cycle and exit (the daemon runs them on a schedule)."
)
@click.option(
    "--target", type=click.Path(path_type=Path, file_okay=False), help="Repository to improve."
)
@click.option("--test-command", help="How to run the target's tests (default: python -m pytest).")
@click.option(
    "--dry-run/--no-dry-run",
    default=None,
    help="@DryRun: evaluate in isolation, change nothing (default: on).",
)
@click.option("--max-changes", type=click.IntRange(min=0), help="@MaxChangesPerRun (default: 1).")
@click.option(
    "--require-approval/--no-require-approval",
    default=None,
    help="@RequireHumanApproval (default: on). The policy may still demand approval.",
)
@click.option(
    "--area",
    type=click.Choice(["performance", "quality", "features", "auto"]),
    help="@TargetArea (default: auto).",
)
def run(
    config: OverseerConfig,
    state_dir: Path | None,
    debug: bool,
    once: bool,
    target: Path | None,
    test_command: str | None,
    dry_run: bool | None,
    max_changes: int | None,
    require_approval: bool | None,
    area: str | None,
) -> None:
    """Run an improvement cycle on each target."""
    if not once:
        fail("`overseer run` needs --once; the long-running mode is `overseer daemon`", 2)
    from overseer.core.context import RunSettings
    from overseer.core.cycle import run_cycle
    from overseer.core.lock import TargetBusy
    from overseer.core.repo import RepoError
    from overseer.core.testrun import resolve_test_command
    from overseer.render import EventPrinter, attempts_table
    from overseer.runtime import TargetNotFound

    d = config.defaults
    settings = RunSettings(
        dry_run=d.dry_run if dry_run is None else dry_run,
        require_approval=d.require_approval if require_approval is None else require_approval,
        max_changes=d.max_changes_per_run if max_changes is None else max_changes,
        area=area or d.area,
        debug=debug,
    )
    rt = runtime_for(config, state_dir)
    rt.bus.subscribe(EventPrinter(debug=debug))
    signal.signal(signal.SIGTERM, _on_sigterm)
    failed = False
    try:
        targets = rt.targets(target, test_command)
    except TargetNotFound as exc:
        fail(str(exc))
    for target_config in targets:
        try:
            ctx = rt.context(target_config)
            tests = resolve_test_command(ctx.target.config, ctx.target.root)
            click.echo(f"overseer · {ctx.target.name}@{ctx.target.branch} · state {rt.state.root}")
            click.echo(f"tests: {tests.command}  ({tests.interpreter})")
            result = run_cycle(ctx, settings)
        except (RepoError, TargetBusy) as exc:
            click.echo(f"overseer: {target_config.path}: {exc}", err=True)
            failed = True
            continue
        except (KeyboardInterrupt, Interrupted):
            fail("interrupted; the attempt in progress was recorded as interrupted", 130)
        failed = failed or result.status != "ok"
        if result.attempts:
            click.echo("")
            click.echo(attempts_table(result.attempts))
            for row in result.attempts:
                _explain(row)
    rt.close()
    sys.exit(1 if failed else 0)


def _explain(row: dict[str, Any]) -> None:
    """After the table: what a dry run would have done, or what to do next."""
    iid = row["improvement_id"][:8]
    if row["status"] == "dry_run":
        click.echo(f"\n{iid}: {row['failure_reason']}")
        click.echo(
            f"  would change {row['target_file']} ({row['change_type']}, risk {row['risk_level']})"
        )
        click.echo(f"  impact: {row['impact']}")
        click.echo((row.get("generated_code") or "").rstrip("\n"))
    elif row["status"] == "promoted":
        click.echo(f"\n{iid}: promoted as {row['git_commit_hash'][:7]} on {row['target_branch']}")
    elif row["status"] in ("awaiting_approval", "ready_to_promote"):
        why = row.get("failure_reason") or "approval required"
        click.echo(
            f"\n{iid}: {why}. Next: `overseer show {iid}`, then `overseer approve {iid}` or "
            f"`overseer reject {iid} --reason …`"
        )
    elif row.get("failure_reason"):
        click.echo(f"\n{iid}: {row['failure_reason']}")


@main.command()
@common
@click.option("--json", "as_json", is_flag=True, help="One JSON object per attempt, newest first.")
@click.option("--target", "target_name", help="Only this target (its name).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
def history(
    config: OverseerConfig,
    state_dir: Path | None,
    debug: bool,
    as_json: bool,
    target_name: str | None,
    limit: int,
) -> None:
    """List the recorded attempts, newest first."""
    from overseer.render import attempts_table

    rt = runtime_for(config, state_dir)
    if not rt.state.database.exists():
        fail(f"no history in {rt.state.root} yet (run `overseer run --once --target PATH`)")
    rows = rt.history.attempts(target=target_name, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(attempts_table(rows))


def _load_row(rt: Any, attempt_id: str) -> dict[str, Any]:
    from overseer.core.history import UnknownAttempt

    if not rt.state.database.exists():
        fail(f"no history in {rt.state.root}")
    try:
        return rt.history.get(rt.history.resolve_id(attempt_id))
    except UnknownAttempt as exc:
        fail(str(exc))


@main.command()
@common
@click.argument("attempt_id")
@click.option("--json", "as_json", is_flag=True)
def show(
    config: OverseerConfig, state_dir: Path | None, debug: bool, attempt_id: str, as_json: bool
) -> None:
    """The full provenance of one attempt."""
    from overseer.render import show_attempt

    rt = runtime_for(config, state_dir)
    row = _load_row(rt, attempt_id)
    events = rt.history.events(improvement_id=row["improvement_id"])
    approvals = rt.history.approvals(row["improvement_id"])
    if as_json:
        click.echo(json.dumps({**row, "events": events, "approvals": approvals}, indent=2))
    else:
        click.echo(show_attempt(row, events, approvals))


def _act(
    config: OverseerConfig,
    state_dir: Path | None,
    debug: bool,
    attempt_id: str,
    action: str,
    reason: str | None,
) -> None:
    from overseer.core import actions
    from overseer.core.context import Actor
    from overseer.core.lock import TargetBusy
    from overseer.core.repo import RepoError
    from overseer.render import EventPrinter

    rt = runtime_for(config, state_dir)
    row = _load_row(rt, attempt_id)
    rt.bus.subscribe(EventPrinter(debug=debug))
    try:
        ctx = rt.context(rt.target_for_row(row))
        do = {"approve": actions.approve, "reject": actions.reject, "rollback": actions.rollback}[
            action
        ]
        after = do(ctx, row["improvement_id"], Actor.current(), reason)
    except (actions.ActionRefused, RepoError, TargetBusy) as exc:
        fail(str(exc))
    iid = after["improvement_id"][:8]
    click.echo(
        f"{iid}: {after['status'].replace('_', ' ')}"
        + (
            f" — {after['failure_reason']}"
            if after.get("failure_reason") and after["status"] != "promoted"
            else ""
        )
    )
    rt.close()
    if action == "approve" and after["status"] not in ("promoted", "ready_to_promote"):
        sys.exit(1)


@main.command()
@common
@click.argument("attempt_id")
@click.option("--reason", help="Why (recorded with your user name).")
def approve(
    config: OverseerConfig, state_dir: Path | None, debug: bool, attempt_id: str, reason: str | None
) -> None:
    """Approve a change that awaits approval, and promote it."""
    _act(config, state_dir, debug, attempt_id, "approve", reason)


@main.command()
@common
@click.argument("attempt_id")
@click.option("--reason", required=True, help="Why (kept, and shown next to similar proposals).")
def reject(
    config: OverseerConfig, state_dir: Path | None, debug: bool, attempt_id: str, reason: str
) -> None:
    """Reject a change that awaits approval; its branch and worktree are removed."""
    _act(config, state_dir, debug, attempt_id, "reject", reason)


@main.command()
@common
@click.argument("attempt_id")
@click.option("--reason", help="Why (recorded with your user name).")
def rollback(
    config: OverseerConfig, state_dir: Path | None, debug: bool, attempt_id: str, reason: str | None
) -> None:
    """Revert a promoted change with a new commit on the target branch."""
    _act(config, state_dir, debug, attempt_id, "rollback", reason)


@main.group("policy")
def policy_group() -> None:
    """Risk policy files."""


@policy_group.command("check")
@common
@click.argument("file", required=False, type=click.Path(path_type=Path, dir_okay=False))
def policy_check(
    config: OverseerConfig, state_dir: Path | None, debug: bool, file: Path | None
) -> None:
    """Check a policy file (default: the configuration's policy) and list every problem."""
    from overseer.core.policy import load_policy

    file = file or config.policy
    if file is None:
        click.echo("no policy file configured: the embedded default policy applies (it is valid)")
        return
    try:
        policy = load_policy(file)
    except ProblemsError as exc:
        for problem in exc.problems:
            click.echo(str(problem))
        fail(f"the policy has {len(exc.problems)} problem(s)")
    click.echo(f"{file}: ok — {policy!r}")


@main.group("config")
def config_group() -> None:
    """The configuration file."""


@config_group.command("check")
@click.argument("file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="OVERSEER_CONFIG",
    help="The file to check when FILE is not given. Env: OVERSEER_CONFIG.",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="OVERSEER_STATE_DIR",
    help="Accepted like every command's; a check reads no state.",
)
@click.option("--debug", is_flag=True)
def config_check(
    file: Path | None, config_path: Path | None, state_dir: Path | None, debug: bool
) -> None:
    """Check a configuration file, its policy and its targets; list every problem."""
    from overseer.checks import check_config

    configure_logging(debug)
    file = file or config_path
    if file is None:
        fail("which file? pass FILE, --config or OVERSEER_CONFIG", 2)
    problems = check_config(file)
    if problems:
        for problem in problems:
            click.echo(str(problem))
        fail(f"{len(problems)} problem(s)")
    click.echo(f"{file}: ok")


@main.command()
@common
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to make the scratch repository (default: a new temporary directory).",
)
def demo(
    config: OverseerConfig, state_dir: Path | None, debug: bool, directory: Path | None
) -> None:
    """Make a scratch repository with real problems and run two full cycles on it.

    The demo brings its own target and policy; from --config it takes the rest (the git
    identity of overseer's commits, say). Its state goes to --state-dir when given.
    """
    from overseer.demo import run_demo

    sys.exit(run_demo(directory, config=config, state_dir=state_dir, debug=debug))


if __name__ == "__main__":
    main()
