"""What the `?` dialog says: every key, and every column, mark and abbreviation on screen.

The statuses come from one table, STATUS_MEANING; a test checks it names every status the
vocabulary has, so a new status cannot reach the screen unexplained.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

KEYS = {
    "a": "approve the selected waiting change (a reason is optional)",
    "r": "reject it (a reason is required; it is shown next to similar changes later)",
    "R": "roll back the selected promoted change with a revert commit (a reason is optional)",
    "n": "run a cycle now",
    "p": "pause / resume: while paused no cycle starts and nothing is promoted",
    "h": "history: every attempt (of the target shown alone, if one is); [ ] pages, / "
    "filters, enter opens one, R rolls back",
    "t": "the next target alone (its changes, its cycle), then every target again; enter on "
    "a row of the target list chooses one, on “all targets” every one",
    "s": "stats of the target shown (or every one): success by change type and risk, the "
    "funnel of new tests per generator; t the next target, esc back",
    "↑ ↓ enter": "select a change; enter opens its full provenance",
    "tab": "between the changes and the target list",
    "?": "this legend",
    "q": "quit (the daemon keeps running)",
    "ctrl+p": "the command palette",
}

STATUS_LINE = {
    "name@branch · 3 targets": "the target, or how many there are (each in the target list)",
    "● connected (alice)": "the daemon's socket, as your user; “read-only”: you are not an "
    "approver, and the daemon refuses a, r, R, n and p",
    "IDLE · RUNNING": "the daemon's state",
    "PAUSED since … by …": "who paused it, when, and why (the circuit breaker pauses after 3 "
    "failed or rolled-back attempts in a row); p resumes",
    "⚠ name UNUSABLE": "a target that cannot be used now (its directory is gone, it is not a "
    "git repository, its branch is missing), and why: no cycle runs on it",
    "✘ name NOT EVALUABLE": "the target's tests did not run at its last cycle (the test "
    "command is missing or fails before any test, nothing is collected): nothing can be "
    "promoted until they do; `overseer status` shows the command's last lines",
    "HISTORY NOT WRITTEN": "the database is locked or the disk is full: cycles stop",
    "llm OFF": "a generator that is off; hover over the status line for why",
    "OBSERVE · SUPERVISED · LIMITED · FULL": "the policy's autonomy. observe: dry-run only; "
    "supervised: every promotion is approved; limited: low-risk changes in the policy's "
    "areas promote themselves; full: up to full_max_auto_risk",
    "dry-run on / off": "on: changes are evaluated in isolation and nothing is promoted",
    "next 14:30": "the next scheduled cycle (not shown while paused)",
    "changes this hour 2 of 3 · today 7 of 10": "the rate limits: changes made in the last "
    "hour and day, of the policy's limits.per_hour and limits.per_day; at a limit no change is "
    "made until the window moves on (several targets: each one's in the target list)",
}

TARGET_COLUMN_MEANING = {
    "target": "the target's name; “all targets” shows every one again",
    "state": "what it does now (below)",
    "phase": "the phase its running cycle is in",
    "last cycle": "how its last cycle ended (ok, failed, interrupted; not evaluable: its "
    "tests did not run), and when",
    "next": "when its next cycle is due",
    "budget": "changes made this hour and today, of the policy's limits (2/3 h · 7/10 d)",
    "health": "✔ it can be used; ✘ and why not (its directory is gone, it is not a git "
    "repository, its branch is missing): no cycle runs on it",
}

TARGET_STATES = {
    "running": "a cycle runs on it",
    "waiting": "its cycle is due and waits for a free slot (daemon.max_parallel_cycles)",
    "idle": "nothing runs; its next cycle comes at `next`",
    "paused": "overseer is paused: no cycle starts",
    "unusable": "it cannot be used now (health says why)",
}

PHASE_MARKS = {
    "▶": "running",
    "✔": "ok",
    "✘": "failed",
    "–": "skipped",
    "·": "not yet",
}

PHASE_MEANING = {
    "ANALYZE": "the target's tests, ruff and the benchmark at the branch head; ranks findings",
    "GENERATE": "turns the best finding into a candidate change",
    "SAFETY": "validates it, rates its risk, asks the policy, applies the rate limits",
    "DEPLOY": "commits it in a worktree of its own (branch overseer/<id>)",
    "EVALUATE": "runs the tests on it and compares them with the baseline, test by test",
    "LEARN": "records the outcome (skipped while a decision is pending)",
    "RECORD": "closes the attempt's history row",
}

COLUMN_MEANING = {
    "id": "the first 8 characters of the attempt's id (overseer show, approve, … take it)",
    "status": "where the change is (below)",
    "type": "quality · optimization · bugfix · feature",
    "risk": "low · medium · high: the highest of the generator's rating, the diff's size, "
    "the oracle guard, the predicted success and the policy's rules",
    "file": "the file it changes (the end of the path when it is long)",
    "p": "predicted success: the estimated probability, in percent, that the change is kept "
    "(promoted and not rolled back), learnt from past outcomes of its kind",
    "tests": "passed ✔ and failed ✘ on the change's own branch",
}

STATUS_MEANING = {
    "running": "being made and evaluated, in a cycle",
    "promoting": "its target branch is being moved to it",
    "awaiting_approval": "shown “⏸ awaiting”: evaluated; waits for a (approve) or r (reject)",
    "ready_to_promote": "shown “⏸ ready”: may be promoted, and waits for a clean working "
    "tree, a resume or an evaluable head",
    "promoted": "on the target branch; R rolls it back",
    "rolled_back": "shown “↩ rolled back”: reverted by a new commit",
    "rejected": "a person said no (the reason is kept)",
    "failed": "it could not be made, or its evaluation failed (the detail says why)",
    "denied": "SAFETY refused it: a protected path, a policy rule, the oracle guard, a limit",
    "dry_run": "evaluated in isolation; nothing was changed",
    "interrupted": "its process stopped before it was settled",
    "expired": "nobody decided in time (approvers.expire_after)",
    "regressed": "promoted, failed its post-promotion check and could not be reverted: roll "
    "it back (R) once the way is clear",
    "error": "overseer or a generator's service failed; not held against the change",
}

NOTES = (
    "A key that does not apply is greyed out in the footer; pressed anyway, it says why.",
    "When a change starts waiting for approval the selection moves to it, unless you moved "
    "the selection in the last few seconds.",
    "A narrow terminal drops the columns type, tests, risk and p, in that order; the detail "
    "on the right shows them all. Its footer leaves out t and s, which still work.",
    "Several cycles running at once take a line each, with the phase each is in; t (or enter "
    "in the target list) shows one target's cycle whole.",
)


def _section(title: str, rows: dict[str, str]) -> list[RenderableType]:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", max_width=22)
    grid.add_column(ratio=1)
    for term, meaning in rows.items():
        grid.add_row(term, meaning)
    return [Text(title, style="bold underline"), grid, Text("")]


def legend() -> Group:
    parts: list[RenderableType] = []
    parts += _section("Keys", KEYS)
    parts += [Text(note) for note in NOTES] + [Text("")]
    parts += _section("Status line", STATUS_LINE)
    parts += _section("Phases", {**PHASE_MARKS, **PHASE_MEANING})
    parts += _section("Targets (the list under the phases)", TARGET_COLUMN_MEANING)
    parts += _section("Target states", TARGET_STATES)
    parts += _section("Changes (waiting ones first, then the most recent)", COLUMN_MEANING)
    parts += _section("Statuses", STATUS_MEANING)
    return Group(*parts)


def legend_text(width: int = 100) -> str:
    """The legend as plain text (for tests and the documentation)."""
    from rich.console import Console

    console = Console(width=width, color_system=None)
    with console.capture() as captured:
        console.print(legend())
    return captured.get()
