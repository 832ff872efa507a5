"""`overseer …`: thin commands over the core and the daemon. Logging is configured here only.

Commands that act (approve, reject, rollback, pause, resume) and read (history, show, status)
go to the running daemon over its socket; without one they say so and act on the state
directory directly. `run-now` and `watch` need the daemon.

Exit status: 0 when the command did its job (a cycle ran, whatever its outcome), 1 when it
could not (bad configuration, a refused action, a failed cycle), 2 for a usage error, 3 from
`status` when no daemon is running.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from overseer.base.problems import ProblemsError
from overseer.base.terminal import visible
from overseer.locations import StateDirUnusable

if TYPE_CHECKING:
    from overseer.config import OverseerConfig


def say(text: object = "", err: bool = False) -> None:
    """Print for a person. Whatever came from outside (file names, reasons, test output, model
    text) is shown with its control characters visible, never acted on by the terminal; JSON
    output is unchanged (json.dumps already escapes them)."""
    click.echo(visible(str(text), lines=True), err=err)


def fail(message: str, code: int = 1) -> NoReturn:
    say(f"overseer: {message}", err=True)
    sys.exit(code)


def note(message: str) -> None:
    say(f"overseer: {message}", err=True)


class Interrupted(BaseException):
    """SIGTERM, raised in the main thread so that the attempt records where it stopped."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Interrupted(f"signal {signum}")


class Options:
    """What every command gets: the configuration (loaded when first needed, so that a quick
    `overseer status` does not pay for validating it) and where things are."""

    def __init__(
        self, config_path: Path | None, state_dir: Path | None, socket: Path | None, debug: bool
    ) -> None:
        self.config_path = config_path
        self.state_dir = state_dir
        self.socket = socket
        self.debug = debug
        self._config: OverseerConfig | None = None
        # Printers of the events an offline action emits (set before the runtime is built).
        self.runtime_subscribers: list[Any] = []
        self._logging = False

    def set_up_logging(self) -> None:
        """Log lines as configure_logging makes them, from here on (once)."""
        if not self._logging:
            from overseer.logs import configure_logging

            configure_logging(self.debug)
            self._logging = True

    @property
    def config(self) -> OverseerConfig:
        if self._config is None:
            from overseer.config import load_config

            self.set_up_logging()  # the command works on its own now, not only through a daemon

            try:
                self._config = load_config(self.config_path)
            except ProblemsError as exc:
                for problem in exc.problems:
                    say(str(problem), err=True)
                fail(f"the configuration has {len(exc.problems)} problem(s); nothing was done")
        return self._config

    @property
    def socket_path(self) -> Path:
        from overseer.locations import configured_socket, resolve_socket

        configured = None
        if self.config_path and not (self.socket or os.environ.get("OVERSEER_SOCKET")):
            # Only its socket is needed to reach the daemon: read without the whole validation.
            known, configured = (
                configured_socket(self.config_path) if self._config is None else (False, None)
            )
            if not known:
                configured = self.config.daemon.socket
        return resolve_socket(self.socket, configured, for_daemon=False)

    def runtime(self, *, read_only: bool = False):  # type: ignore[no-untyped-def]
        from overseer.runtime import Runtime

        self.set_up_logging()

        try:
            rt = Runtime.create(self.config, self.state_dir, read_only=read_only)
        except ProblemsError as exc:
            for problem in exc.problems:
                say(str(problem), err=True)
            fail(f"the policy has {len(exc.problems)} problem(s); nothing was done")
        for subscriber in self.runtime_subscribers:
            rt.bus.subscribe(subscriber)
        return rt

    def application(  # type: ignore[no-untyped-def]
        self,
        target: Path | None = None,
        test_command: str | None = None,
        *,
        read_only: bool = False,
    ):
        """The operations on the state directory directly, when no daemon answers; `read_only`
        for the commands that only read (they then need only read access)."""
        from overseer.application import Application
        from overseer.runtime import TargetNotFound

        rt = self.runtime(read_only=read_only)
        try:
            targets = rt.targets(target, test_command) if target or rt.config.targets else []
        except TargetNotFound as exc:
            fail(str(exc))
        return Application(rt, targets)

    def daemon(self, op: str, **args: Any) -> Any:
        """One request to the running daemon. Raises DaemonUnavailable when there is none."""
        from overseer.oneshot import DaemonError, request

        try:
            return request(self.socket_path, op, **args)
        except DaemonError as exc:
            fail(f"{exc.title}: {exc.message}")


def location_options(
    *, config: str, state_dir: str, socket: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--config, --state-dir and --socket with their environment variables; `help` says what
    each means to the command."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in (
            click.option(
                "--socket",
                type=click.Path(path_type=Path, dir_okay=False),
                envvar="OVERSEER_SOCKET",
                help=f"{socket} Env: OVERSEER_SOCKET.",
            ),
            click.option(
                "--state-dir",
                # Whether it can be read or written is overseer's to say (what, and whom to
                # ask), not a usage error.
                type=click.Path(path_type=Path, file_okay=False, readable=False),
                envvar="OVERSEER_STATE_DIR",
                help=f"{state_dir} Env: OVERSEER_STATE_DIR.",
            ),
            click.option(
                "--config",
                "config_path",
                type=click.Path(path_type=Path, dir_okay=False),
                envvar="OVERSEER_CONFIG",
                help=f"{config} Env: OVERSEER_CONFIG.",
            ),
        ):
            func = option(func)
        return func

    return decorate


def asks_the_daemon(func: Callable[..., Any]) -> Callable[..., Any]:
    """Under @common: a command whose usual work is one request to the daemon. Its logging is
    set up only once it works on the state directory itself (Options.config, .runtime), or
    with --debug: importing `logging` is a tenth of such a command's start."""
    func.asks_the_daemon = True  # type: ignore[attr-defined]
    return func


def common(func: Callable[..., Any]) -> Callable[..., Any]:
    """--config, --state-dir, --socket and --debug on every command (and their environment
    variables). The command gets Options; a broken configuration stops it with its problems.
    """

    @location_options(
        config="Configuration file (default: the embedded defaults).",
        state_dir="History database and worktrees.",
        socket="The daemon's control socket.",
    )
    @click.option("--debug", is_flag=True, help="Verbose logging and phase progress.")
    @functools.wraps(func)
    def wrapper(
        config_path: Path | None,
        state_dir: Path | None,
        socket: Path | None,
        debug: bool,
        **kw: Any,
    ) -> Any:
        debug = debug or _global_debug()
        opts = Options(config_path, state_dir, socket, debug)
        if debug or not getattr(func, "asks_the_daemon", False):
            opts.set_up_logging()
        try:
            return func(opts, **kw)
        except StateDirUnusable as exc:
            fail(str(exc))
        except Exception as exc:
            if "overseer.core.record.history" not in sys.modules:  # not imported: not raised by it
                raise
            from overseer.core.record.history import HistoryUnavailable

            if not isinstance(exc, HistoryUnavailable):
                raise
            fail(f"{exc}; nothing more was done (the next run closes what this one left open)")

    return wrapper


def via_daemon(opts: Options, op: str, *, fallback: str, **args: Any) -> tuple[bool, Any]:
    """(True, result) from the daemon, or (False, None) when there is none. Working without
    one is normal (a person at a workstation, cron): said only with --debug. A daemon the
    user may not reach (its socket directory closed to them) is not normal: always said, with
    whom to ask."""
    from overseer.oneshot import DaemonForbidden, DaemonUnavailable

    try:
        return True, opts.daemon(op, **args)
    except DaemonUnavailable as exc:
        if opts.debug or isinstance(exc, DaemonForbidden):
            note(f"{exc}; {fallback}")
        return False, None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="overseer")
@click.option(
    "--debug",
    is_flag=True,
    help="For every command: verbose logging, phase progress, and what it tried (a daemon "
    "that did not answer, say).",
)
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Supervised, autonomous code-improvement cycles on git repositories."""
    ctx.obj = {"debug": debug}


def _global_debug() -> bool:
    """`overseer --debug COMMAND`: the group's flag, for a command that has its own too."""
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    return bool(root is not None and isinstance(root.obj, dict) and root.obj.get("debug"))


# -- one cycle ----------------------------------------------------------------------------


def run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The run flags, the same for `run --once` and `daemon` (over the configuration's
    `defaults:`; the policy may still make a run stricter)."""
    for option in (
        click.option(
            "--area",
            type=click.Choice(["performance", "quality", "features", "auto"]),
            help="Which findings to work on: one area, or auto (the default) for all of them.",
        ),
        click.option(
            "--require-approval/--no-require-approval",
            default=None,
            help="A person approves each promotion (default: on). The policy may still demand it.",
        ),
        click.option(
            "--max-changes",
            type=click.IntRange(min=0),
            help="Changes per run at most (default: 1; the policy caps it).",
        ),
        click.option(
            "--dry-run/--no-dry-run",
            default=None,
            help="Evaluate in isolation, change nothing (default: on).",
        ),
    ):
        func = option(func)
    return func


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
    "--metrics-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the metrics there at the end (Prometheus text format, for node-exporter's "
    "textfile collector).",
)
@run_options
def run(
    opts: Options,
    once: bool,
    target: Path | None,
    test_command: str | None,
    metrics_file: Path | None,
    dry_run: bool | None,
    max_changes: int | None,
    require_approval: bool | None,
    area: str | None,
) -> None:
    """Run an improvement cycle on each target."""
    if not once:
        fail("`overseer run` needs --once; the long-running mode is `overseer daemon`", 2)
    import signal

    from overseer.core.plumbing.lock import TargetBusy
    from overseer.core.plumbing.repo import RepoError
    from overseer.core.plumbing.testrun import resolve_test_command
    from overseer.render import EventPrinter, attempts_table
    from overseer.runtime import TargetNotFound
    from overseer.vocabulary import paused_text

    try:
        app = opts.application(target, test_command)
        if not app.targets:
            raise TargetNotFound(
                "no target: pass --target PATH, or list targets in the configuration file"
            )
    except TargetNotFound as exc:
        fail(str(exc))
    rt = app.rt
    settings = app.run_settings(
        dry_run=dry_run,
        require_approval=require_approval,
        max_changes=max_changes,
        area=area,
        debug=opts.debug,
    )
    paused = rt.history.paused()
    if paused and not app.resolved(settings).dry_run:
        fail(f"{paused_text(paused)}; `overseer resume` first, or run with --dry-run")
    rt.bus.subscribe(EventPrinter(debug=opts.debug))
    notifications = _notifications(rt.config)
    if notifications is not None:
        rt.bus.subscribe(notifications.start())
    metrics = None
    if metrics_file is not None:
        from overseer.metrics import Metrics

        metrics = Metrics(app, notifications=notifications.status if notifications else list)
        rt.bus.subscribe(metrics)
    signal.signal(signal.SIGTERM, _on_sigterm)
    failed = False
    for target_config in app.targets:
        try:
            ctx = app.context(target_config)
            tests = resolve_test_command(ctx.target.config, ctx.target.root)
            say(f"overseer · {ctx.target.name}@{ctx.target.branch} · state {rt.state.root}")
            say(f"tests: {tests.command}  ({tests.interpreter})")
            result = app.run_once(target_config, settings)
        except (RepoError, TargetBusy) as exc:
            say(f"overseer: {target_config.path}: {exc}", err=True)
            failed = True
            continue
        except (KeyboardInterrupt, Interrupted):
            fail("interrupted; the attempt in progress was recorded as interrupted", 130)
        failed = failed or result.status != "ok"
        if result.attempts:
            say("")
            say(attempts_table(result.attempts))
            for row in result.attempts:
                _explain(row)
        if result.analysis is not None and app.resolved(settings).dry_run:
            _preview(result.analysis.commit, len(result.attempts), result.dry_run_skipped)
    if notifications is not None:
        # What is still to send, in a short time: one cycle's run must end.
        notifications.close(min(10.0, max(r.timeout for r in rt.config.notify)))
        for receiver in notifications.status():
            if not receiver["ok"]:
                say(
                    f"overseer: notifying {receiver['url']} failed: {receiver['last_error']}",
                    err=True,
                )
    if metrics is not None and metrics_file is not None:
        try:
            metrics.write(metrics_file)
        except OSError as exc:
            say(f"overseer: cannot write the metrics to {metrics_file}: {exc}", err=True)
            failed = True
    rt.close()
    sys.exit(1 if failed else 0)


def _notifications(config: Any) -> Any:
    """The receivers of `notify`, or None (Apprise is imported only when there are some)."""
    if not config.notify:
        return None
    from overseer.notifications import Notifications

    try:
        return Notifications.create(config.notify)
    except Exception as exc:
        fail(f"notify: {exc}")


def _preview(commit: str, made: int, skipped: list[str]) -> None:
    """What a dry run says about the real run it previews."""
    if not made and not skipped:
        return
    same = (
        f"\ndry run: a real run on {commit[:7]} ranks the findings the same way (by the commit, "
        "its findings and what was learned, not by the run)"
    )
    if not skipped:
        say(same + f": it would try the same change{'s' if made > 1 else ''} first")
        return
    say(
        same
        + ", but it would first try what earlier dry runs tried on this code (skipped here): "
        + ", ".join(skipped[:5])
        + (" …" if len(skipped) > 5 else "")
    )


def _explain(row: Mapping[str, Any]) -> None:
    """After the table: what a dry run would have done, or what to do next."""
    iid = row["improvement_id"][:8]
    if row["status"] == "dry_run":
        say(f"\n{iid}: {row['failure_reason']}")
        say(f"  would change {row['target_file']} ({row['change_type']}, risk {row['risk_level']})")
        say(f"  impact: {row['impact']}")
        say((row.get("generated_code") or "").rstrip("\n"))
    elif row["status"] == "promoted":
        say(f"\n{iid}: promoted as {row['git_commit_hash'][:7]} on {row['target_branch']}")
    elif row["status"] in ("awaiting_approval", "ready_to_promote"):
        why = row.get("failure_reason") or "approval required"
        say(
            f"\n{iid}: {why}. Next: `overseer show {iid}`, then `overseer approve {iid}` or "
            f"`overseer reject {iid} --reason …`"
        )
    elif row.get("failure_reason"):
        say(f"\n{iid}: {row['failure_reason']}")


# -- the daemon ---------------------------------------------------------------------------


@main.command()
@common
@click.option(
    "--target",
    type=click.Path(path_type=Path, file_okay=False),
    help="Supervise this repository (default: the configured targets).",
)
@click.option("--test-command", help="How to run the target's tests (default: python -m pytest).")
@run_options
def daemon(
    opts: Options,
    target: Path | None,
    test_command: str | None,
    dry_run: bool | None,
    max_changes: int | None,
    require_approval: bool | None,
    area: str | None,
) -> None:
    """Run the supervisor in the foreground (as systemd wants it): scheduled cycles and the
    control socket. SIGTERM stops it gracefully, a second SIGTERM at once; SIGHUP reloads.

    It does not start (exit status 1) while its configuration has a problem `overseer config
    check` finds — all of them are listed — except a generator that does not answer yet, which
    it checks again. The run flags hold for every cycle it runs, over `defaults:`."""
    import asyncio
    import logging
    import os

    from overseer.application import RunFlags
    from overseer.daemon.server import Daemon, DaemonFailed, DaemonOptions
    from overseer.logs import configure_logging

    configure_logging(opts.debug, logging.INFO)
    if opts.config_path is not None:
        from overseer.checks import check_config

        problems = check_config(opts.config_path, generators=False, targets=target is None)
        if problems:
            for problem in problems:
                say(str(problem), err=True)
            fail(
                f"the configuration has {len(problems)} problem(s) (`overseer config check` "
                "lists the same); the daemon did not start"
            )
    options = DaemonOptions(
        config=opts.config,
        config_path=opts.config_path,
        state_dir=opts.state_dir,
        socket=opts.socket,
        target=target,
        test_command=test_command,
        flags=RunFlags(dry_run, require_approval, max_changes, area),
    )
    try:
        supervisor = Daemon(options)
    except ProblemsError as exc:
        for problem in exc.problems:
            say(str(problem), err=True)
        fail(f"the policy has {len(exc.problems)} problem(s); the daemon did not start")
    try:
        asyncio.run(supervisor.serve())
    except DaemonFailed as exc:
        fail(f"the daemon did not start: {exc}")
    if supervisor.worker_stuck:
        logging.getLogger("overseer").error(
            "a lane (a target's thread) did not stop; exiting anyway"
        )
        os._exit(1)


@main.command()
@common
@asks_the_daemon
@click.option("--json", "as_json", is_flag=True)
def status(opts: Options, as_json: bool) -> None:
    """What the daemon is doing: state, autonomy, phase, next run, budget, generators that are
    off and why, pending approvals."""
    from overseer.oneshot import DaemonUnavailable

    try:
        result = opts.daemon("status")
    except DaemonUnavailable as exc:
        offline = opts.application(read_only=True).status()
        offline["reason"] = str(exc)
        if as_json:
            say(json.dumps(offline, indent=2, default=str))
        else:
            from overseer.render import status_text

            say(f"daemon: not running — {exc}")
            say(status_text(offline, offline=True))
        sys.exit(3)
    if as_json:
        say(json.dumps(result, indent=2))
    else:
        from overseer.render import status_text  # the vocabulary's words: a third of the start

        say(status_text(result))


@main.command("run-now")
@common
@asks_the_daemon
def run_now(opts: Options) -> None:
    """Ask the daemon to start a cycle now."""
    from overseer.oneshot import DaemonUnavailable

    try:
        result = opts.daemon("run_now")
    except DaemonUnavailable as exc:
        fail(f"{exc}; to run one cycle without a daemon: `overseer run --once`")
    say(f"cycle started on {', '.join(result['targets'])}; follow it with `overseer watch`")
    for name, why in (result.get("skipped") or {}).items():
        say(f"not on {name}: it cannot be used: {why}", err=True)


@main.command()
@common
@asks_the_daemon
@click.option("--reason", help="Why (shown in status and recorded).")
def pause(opts: Options, reason: str | None) -> None:
    """The kill switch: no cycle starts and nothing is promoted until `overseer resume`."""
    _pause(opts, True, reason)


@main.command()
@common
@asks_the_daemon
def resume(opts: Options) -> None:
    """Lift the kill switch."""
    _pause(opts, False, None)


def _checked(reason: str | None) -> None:
    """A reason the daemon would refuse is refused here, before anyone is asked: the same
    answer with a daemon or without."""
    from overseer.vocabulary import reason_too_long

    problem = reason_too_long(reason)
    if problem:
        fail(problem)


def _pause(opts: Options, paused: bool, reason: str | None) -> None:
    if reason is not None:  # resume has none
        _checked(reason)
    op = "pause" if paused else "resume"
    args = {"reason": reason} if paused else {}
    reached, _ = via_daemon(opts, op, fallback="setting it in the state directory directly", **args)
    if not reached:
        from overseer.core.context import Actor

        app = opts.application()
        if paused:
            app.pause(Actor.current(), reason)
        else:
            app.resume(Actor.current())
        app.rt.close()
    say("paused: no cycle starts and nothing is promoted" if paused else "resumed")


@main.command()
@common
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line.")
def watch(opts: Options, as_json: bool) -> None:
    """Print the daemon's live events until interrupted.

    Ctrl-C and SIGTERM end it quietly, with exit status 0 (a service manager stopping it is
    not a failure); 1 when the daemon cannot be reached."""
    import asyncio
    import signal

    from overseer.client import Client, DaemonError, DaemonUnavailable
    from overseer.render import EventPrinter

    printer = EventPrinter(debug=opts.debug)

    async def follow() -> None:
        # A signal cancels the stream from inside the loop: the connection closes in order,
        # and nothing is raised into the middle of asyncio's own code.
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            async with Client(opts.socket_path, name="overseer-watch") as client:
                await client.request("subscribe")
                async for event in client.events():
                    if as_json:
                        say(json.dumps(event))
                        sys.stdout.flush()  # a pipe reader sees each event as it happens
                    else:
                        printer(event)
            note("the daemon closed the connection")
        except asyncio.CancelledError:
            return  # stopped by Ctrl-C or SIGTERM
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    # Until the loop runs, Ctrl-C ends it quietly too (even if our parent ignored SIGINT).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        asyncio.run(follow())
    except DaemonUnavailable as exc:
        fail(str(exc))
    except DaemonError as exc:
        fail(f"{exc.title}: {exc.message}")
    except KeyboardInterrupt:
        pass


@main.command()
@common
def tui(opts: Options) -> None:
    """The terminal UI: watch, approve, reject and roll back from the keyboard."""
    from overseer.tui.app import run

    run(opts.socket_path)


# -- the record ---------------------------------------------------------------------------


@main.command()
@common
@asks_the_daemon
@click.option("--json", "as_json", is_flag=True, help="One JSON object per attempt, newest first.")
@click.option("--target", "target_name", help="Only this target (its name).")
@click.option("--limit", type=click.IntRange(min=1, max=1000), default=50, show_default=True)
def history(opts: Options, as_json: bool, target_name: str | None, limit: int) -> None:
    """List the recorded attempts, newest first."""
    from overseer.render import attempts_table

    reached, result = via_daemon(
        opts, "history", fallback="reading the state directory", limit=limit, target=target_name
    )
    if not reached:
        result = _offline(opts, "history", target=target_name, limit=limit)
    rows = result["attempts"]
    if as_json:
        say(json.dumps(rows, indent=2))
    else:
        say(attempts_table(rows))


@main.command()
@common
@click.option("--json", "as_json", is_flag=True)
@click.option("--target", "target_name", help="Only this target (its name).")
def stats(opts: Options, as_json: bool, target_name: str | None) -> None:
    """Success patterns by change type and risk, the best and worst finding kinds, the funnel
    of new tests per generator, and the success predictor's version and calibration."""
    from overseer.core.learn.stats import stats_text

    args = {} if target_name is None else {"target": target_name}
    reached, result = via_daemon(opts, "stats", fallback="reading the state directory", **args)
    if not reached:
        result = _offline(opts, "stats", target_name)
    say(json.dumps(result, indent=2) if as_json else stats_text(result))


READING = {"history", "show", "stats", "explain", "status"}


def _offline(opts: Options, operation: str, *args: Any, **kwargs: Any) -> Any:
    """An operation of the application on the state directory, its refusals said plainly."""
    from overseer.application import NoHistory, UnknownTarget
    from overseer.core.lifecycle import ActionRefused
    from overseer.core.plumbing.lock import TargetBusy
    from overseer.core.plumbing.repo import RepoError
    from overseer.core.record.history import UnknownAttempt

    app = opts.application(read_only=operation in READING)
    try:
        return getattr(app, operation)(*args, **kwargs)
    except (NoHistory, UnknownAttempt, UnknownTarget, ActionRefused, RepoError, TargetBusy) as exc:
        fail(str(exc))
    finally:
        app.rt.close()


@main.command()
@common
@asks_the_daemon
@click.argument("attempt_id")
@click.option("--json", "as_json", is_flag=True)
def show(opts: Options, attempt_id: str, as_json: bool) -> None:
    """The full provenance of one attempt."""
    from overseer.render import show_attempt

    reached, data = via_daemon(opts, "show", fallback="reading the state directory", id=attempt_id)
    if not reached:
        data = _offline(opts, "show", attempt_id)
    if as_json:
        say(json.dumps(data, indent=2))
    else:
        say(show_attempt(data, data.pop("events"), data.pop("approvals")))


# -- decisions ----------------------------------------------------------------------------


def _act(opts: Options, attempt_id: str, action: str, reason: str | None) -> None:
    _checked(reason)
    args: dict[str, Any] = {"id": attempt_id}
    if reason is not None:
        args["reason"] = reason
    reached, after = via_daemon(
        opts, action, fallback="acting on the state directory directly", **args
    )
    if not reached:
        after = _act_directly(opts, attempt_id, action, reason)
    if after.get("queued"):
        say(after["message"])
        return
    iid = after["improvement_id"][:8]
    why = after.get("failure_reason")
    say(
        f"{iid}: {after['status'].replace('_', ' ')}"
        + (f" — {why}" if why and after["status"] not in ("promoted", "rolled_back") else "")
    )
    if action == "approve" and after["status"] not in ("promoted", "ready_to_promote"):
        sys.exit(1)


def _act_directly(
    opts: Options, attempt_id: str, action: str, reason: str | None
) -> dict[str, Any]:
    from overseer.core.context import Actor
    from overseer.render import EventPrinter

    opts.runtime_subscribers.append(EventPrinter(debug=opts.debug))
    after: dict[str, Any] = _offline(opts, action, attempt_id, Actor.current(), reason)
    return after


_WHY = "Why (recorded with your user name)."


def _decision_command(
    action: str, summary: str, *, reason_required: bool = False, reason_help: str = _WHY
) -> None:
    """`overseer ACTION ATTEMPT_ID [--reason …]`: a human's decision on one attempt, taken by
    the daemon or, without one, on the state directory (`_act`)."""

    @main.command(name=action, help=summary)
    @common
    @asks_the_daemon
    @click.argument("attempt_id")
    @click.option("--reason", required=reason_required, help=reason_help)
    def decide(opts: Options, attempt_id: str, reason: str | None) -> None:
        _act(opts, attempt_id, action, reason)


_decision_command("approve", "Approve a change that awaits approval, and promote it.")
_decision_command(
    "reject",
    "Reject a change that awaits approval; its branch and worktree are removed.",
    reason_required=True,
    reason_help="Why (kept, and shown next to similar proposals).",
)
_decision_command("rollback", "Revert a promoted change with a new commit on the target branch.")


@main.command()
@common
@asks_the_daemon
@click.argument("attempt_id")
@click.option("--reason", help=_WHY)
def retry(opts: Options, attempt_id: str, reason: str | None) -> None:
    """Let the finding a settled attempt was made for be proposed again.

    Cycles skip a finding that an attempt on the same code already settled (failed, rejected,
    denied, rolled back, expired; a dry run, for dry runs). Once what made it fail is fixed
    outside the code (a test command, a dependency), this lets the next cycle choose it again.
    The attempt keeps its status; the retry is recorded with it (`overseer show ID`)."""
    args: dict[str, Any] = {"id": attempt_id}
    if reason is not None:
        args["reason"] = reason
    reached, result = via_daemon(
        opts, "retry", fallback="recording it in the state directory directly", **args
    )
    if not reached:
        from overseer.core.context import Actor

        result = _offline(opts, "retry", attempt_id, Actor.current(), reason)
    iid = result["improvement_id"][:8]
    others = [i[:8] for i in result["reopened"] if i != result["improvement_id"]]
    also = f" (also opened: {', '.join(others)})" if others else ""
    say(f"{iid}: {result['finding']} may be proposed again by the next cycle{also}")


# -- checks -------------------------------------------------------------------------------


@main.group("policy")
def policy_group() -> None:
    """Risk policy files."""


@policy_group.command("check")
@common
@click.argument("file", required=False, type=click.Path(path_type=Path, dir_okay=False))
def policy_check(opts: Options, file: Path | None) -> None:
    """Check a policy file (default: the configuration's policy) and list every problem."""
    from overseer.core.safety.policy import load_policy

    file = file or opts.config.policy
    if file is None:
        say("no policy file configured: the embedded default policy applies (it is valid)")
        return
    try:
        policy = load_policy(file)
    except ProblemsError as exc:
        for problem in exc.problems:
            say(str(problem))
        fail(f"the policy has {len(exc.problems)} problem(s)")
    say(f"{file}: ok — {policy!r}")


@policy_group.command("explain")
@common
@click.argument("attempt_id")
@click.option("--json", "as_json", is_flag=True)
def policy_explain(opts: Options, attempt_id: str, as_json: bool) -> None:
    """Which facts and rules produced an attempt's verdict, and what the current policy says."""
    result = _offline(opts, "explain", attempt_id)
    facts, verdict = result["facts"], result["verdict"]
    if as_json:
        say(json.dumps(result, indent=2))
        return
    say(
        f"Attempt {result['improvement_id'][:8]}: {verdict['decision']}, risk {verdict['risk']} "
        f"(policy {result['policy_version']})"
    )
    say("Facts measured from the change:")
    for key in (
        "paths",
        "change_type",
        "area",
        "generator",
        "finding",
        "lines_changed",
        "stated_risk",
        "predicted_success",
        "oracle",
        "xfail_removed",
        "test_edits",
        "require_approval",
    ):
        say(f"  {key:<18} {facts.get(key)}")
    say("How the verdict came about, in order:")
    for reason in verdict.get("reasons") or []:
        say(f"  · {reason}")
    say(f"Rules that matched: {', '.join(verdict.get('rules') or []) or 'none'}")
    now = result["current_policy"]
    same = (now["decision"], now["risk"]) == (verdict["decision"], verdict["risk"])
    say(
        f"The current policy ({now['version']}) says: {now['decision']}, risk {now['risk']}"
        + (" — the same." if same else " — different:")
    )
    if not same:
        for reason in now["reasons"]:
            say(f"  · {reason}")


@main.group("config")
def config_group() -> None:
    """The configuration file."""


@config_group.command("check")
@click.argument("file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@location_options(
    config="The file to check when FILE is not given.",
    state_dir="Accepted like every command's; a check reads no state.",
    socket="Accepted like every command's; a check needs no daemon.",
)
@click.option("--debug", is_flag=True)
def config_check(
    file: Path | None,
    config_path: Path | None,
    state_dir: Path | None,
    socket: Path | None,
    debug: bool,
) -> None:
    """Check a configuration file, its policy and its targets; list every problem."""
    from overseer.checks import check_config
    from overseer.logs import configure_logging

    configure_logging(debug or _global_debug())
    file = file or config_path
    if file is None:
        fail("which file? pass FILE, --config or OVERSEER_CONFIG", 2)
    problems = check_config(file)
    if problems:
        for problem in problems:
            say(str(problem))
        fail(f"{len(problems)} problem(s)")
    say(f"{file}: ok")


# -- the demo -----------------------------------------------------------------------------


@main.command()
@common
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to make the scratch repository (default: a new temporary directory, "
    "removed when the demo ends).",
)
@click.option(
    "--keep",
    is_flag=True,
    help="Keep the temporary scratch directory (repository, state, log) and say where it is.",
)
def demo(opts: Options, directory: Path | None, keep: bool) -> None:
    """Make a scratch repository with real problems and supervise it with a real daemon.

    On a terminal it opens the TUI with a change waiting for your approval; elsewhere it prints
    two cycles live. It brings its own target and policy; from --config it takes the rest (the
    git identity of overseer's commits, say). Its state goes to --state-dir when given.
    """
    from overseer.demo import run_demo

    _ = opts.config  # a broken --config stops here, with its problems
    sys.exit(
        run_demo(
            directory,
            config_path=opts.config_path,
            state_dir=opts.state_dir,
            debug=opts.debug,
            keep=keep,
        )
    )


if __name__ == "__main__":
    main()
