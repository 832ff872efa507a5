"""How the CLI shows cycles, attempts and history to a person (JSON output lives in the CLI)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import click

from overseer.base.terminal import visible, visible_all
from overseer.vocabulary import (
    Event,
    LastCycle,
    Pause,
    PhaseFinished,
    Tone,
    budget_text,
    event_from_dict,
    last_cycle_text,
    local_time,
    output_lines,
    success_text,
)

COLORS = {"ok": "green", "failed": "red", "skipped": "yellow"}


# How each tone of event looks on a terminal (click.style keywords).
TONE_STYLES: dict[Tone, dict[str, Any]] = {
    Tone.HEADING: {"bold": True},
    Tone.GOOD: {"fg": "green"},
    Tone.NOTICE: {"fg": "yellow"},
    Tone.BAD: {"fg": "red"},
    Tone.LOUD: {"fg": "red", "bold": True},
}


def event_line(e: dict[str, Any] | Event, style: Any = None) -> str | None:
    """One line for an event (as a dict, the way it crosses the socket, or typed); None: not
    shown. Each event says what it is (vocabulary.py); `style` (click.style) colours it."""
    event = e if isinstance(e, Event) else event_from_dict(e)
    if event is None:
        return None
    line = event.describe()
    if line is None:
        return None
    line = visible(line, lines=True)  # what it quotes came from outside: shown, not acted on
    if style is None:
        return line
    if isinstance(event, PhaseFinished):  # only the mark is coloured, by the outcome
        mark = style(event.mark, fg=COLORS.get(event.outcome))
        return line.replace(event.mark, mark, 1)
    look = TONE_STYLES.get(event.tone)
    return style(line, **look) if look else line


class EventPrinter:
    """Prints each phase as it happens. On a terminal, the running phase's line shows progress.

    Takes events as dicts (what crosses the socket) or as core events (which have to_dict).
    """

    def __init__(self, stream: TextIO | None = None, *, debug: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.debug = debug
        self._open_line = False
        self._attempts: set[str] = set()

    def _print(self, text: str) -> None:
        if self._open_line:
            self.stream.write("\r\033[K")
            self._open_line = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def _status(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            self._open_line = True

    def __call__(self, event: Any) -> None:
        # Phases and messages hold what the target and models wrote: shown, never acted on.
        e = visible_all(event if isinstance(event, dict) else event.to_dict())
        kind = e.get("kind")
        if kind == "PhaseStarted":
            iid = e.get("improvement_id")
            if iid and iid not in self._attempts:
                self._attempts.add(iid)
                self._print(f" Attempt {iid[:8]}")
            self._status(f"  ▶ {e['phase']:<9}")
            return
        if kind == "PhaseProgress":
            if e.get("total"):
                self._status(f"  ▶ {e['phase']:<9} {e['message']} {e['done']}/{e['total']}")
            elif e.get("done") is None:
                if self.debug:
                    self._print(f"    … {e['message']}")
                else:
                    self._status(f"  ▶ {e['phase']:<9} {e['message']}")
            return
        line = event_line(e, click.style if self.tty else None)
        if line is not None:
            self._print(line)


def _tests(row: Mapping[str, Any]) -> str:
    if row.get("tests_passed") is None:
        return "-"
    return f"{row['tests_passed']}✔ {row.get('tests_failed') or 0}✘"


def attempts_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "No attempts recorded yet."
    header = ("ID", "STATUS", "TARGET", "TYPE", "RISK", "FILE", "TESTS", "COMMIT", "STARTED")
    body = [
        tuple(  # shown as they will be printed, so that the columns line up
            visible(str(cell))
            for cell in (
                r["improvement_id"][:8],
                r["status"],
                r.get("target") or "-",
                r.get("change_type") or "-",
                r.get("risk_level") or "-",
                r.get("target_file") or "-",
                _tests(r),
                (r.get("revert_commit_hash") and f"↩{r['revert_commit_hash'][:7]}")
                or (r.get("git_commit_hash") or "-")[:7],
                local_time(r.get("started_at")),
            )
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=False)]
    widths[5] = min(widths[5], 40)

    def line(cells: tuple[str, ...]) -> str:
        out = []
        for cell, width in zip(cells, widths, strict=True):
            text = str(cell)
            if len(text) > width:
                text = "…" + text[-(width - 1) :]
            out.append(text.ljust(width))
        return "  ".join(out).rstrip()

    return visible("\n".join([line(header), *(line(b) for b in body)]), lines=True)


def external_text(external_ms: dict[str, float]) -> str:
    """`tests 3.9 s, git 36 ms`: a phase's time in external programs."""
    return ", ".join(
        f"{kind} {ms / 1000:.1f} s" if ms >= 1000 else f"{kind} {ms:.0f} ms"
        for kind, ms in external_ms.items()
    )


def round_line(x: Mapping[str, Any]) -> str:
    """One round of a model's attempt (core/generate/repair.py), for `overseer show`."""
    replies = x.get("replies") or []
    verdict = x.get("verdict") or {}
    if x.get("not_sent"):
        what = f"not sent: {x['not_sent']}"
    else:
        what = f"{verdict.get('phase') or '-'} {verdict.get('outcome') or 'in progress'}"
        reason = str(verdict.get("reason") or "").strip().splitlines()
        if reason and verdict.get("outcome") != "passed":
            what += f": {reason[0][:160]}"
    cost = (
        f"{len(replies)} repl{'y' if len(replies) == 1 else 'ies'}, {x.get('tokens') or 0} tokens"
    )
    return f"round {x.get('round')}  {what}  ({cost})"


def show_attempt(
    row: dict[str, Any], events: list[dict[str, Any]], approvals: list[dict[str, Any]]
) -> str:
    r = row
    out = [
        f"Attempt {r['improvement_id']}  ({r['status']})",
        f"  target        {r['target']} @ {r['target_branch']} ({r['target_path']})",
        f"  base commit   {r['base_commit']}",
        f"  started       {local_time(r.get('started_at'))}   completed {local_time(r.get('completed_at'))}",
        f"  dry run       {'yes' if r.get('dry_run') else 'no'}",
        f"  generator     {r.get('generator')} on {r.get('finding_kind')}",
        f"  change        {r.get('change_type') or '-'}: {r.get('summary') or '-'}",
        *(
            [f"  feature test  {r['feature']['text']}"]
            if isinstance(r.get("feature"), dict) and r["feature"].get("text")
            else []
        ),
        f"  target file   {r.get('target_file') or '-'}  ({r.get('lines_changed') or 0} lines changed)",
        f"  impact        {r.get('impact') or '-'}",
        f"  risk          {r.get('risk_level') or '-'} (generator said {r.get('stated_risk') or '-'}); verdict {r.get('verdict') or '-'}",
    ]
    for reason in r.get("risk_reasons") or []:
        out.append(f"                · {reason}")
    out += [
        f"  success score {r['success_score'] if r.get('success_score') is not None else '-'}",
        f"  tests         {r.get('tests_passed') if r.get('tests_passed') is not None else '-'} passed, "
        f"{r.get('tests_failed') if r.get('tests_failed') is not None else '-'} failed, "
        f"{r.get('tests_skipped') if r.get('tests_skipped') is not None else '-'} skipped",
        f"  perf delta    {r['performance_delta']:+.2f} %"
        if r.get("performance_delta") is not None
        else "  perf delta    -",
        f"  branch        {r.get('git_branch') or '-'}",
        f"  commit        {r.get('git_commit_hash') or '-'}",
        f"  deployed      {'yes' if r.get('was_deployed') else 'no'}"
        + (f" at {local_time(r.get('promoted_at'))}" if r.get("promoted_at") else ""),
        f"  push          {r.get('push_result') or '-'}",
        "  rolled back   "
        + (
            f"yes at {local_time(r.get('rolled_back_at'))} by {r.get('rolled_back_by')}: "
            f"{r.get('rollback_reason')} (revert {(r.get('revert_commit_hash') or '')[:7]})"
            if r.get("was_rolled_back")
            else "no"
        ),
        f"  policy        {r.get('policy_version') or '-'}",
    ]
    if r.get("failure_reason"):
        out.append(f"  why           {r['failure_reason']}")
    if r.get("skipped_because"):
        out.append(f"  next cycles   {r['skipped_because']}")
    for earlier in r.get("similar_rejections") or []:
        out.append(
            f"  rejected before: {earlier['improvement_id'][:8]} ({earlier.get('target_file')}) by "
            f"{earlier['user']}: {earlier['reason']}"
        )
    evaluation = r.get("evaluation") or {}
    concurrency = evaluation.get("concurrency") or (r.get("analysis_results") or {}).get(
        "concurrency"
    )
    if concurrency:  # whether the baseline's and the candidate's tests ran at once, and why
        how = "at once" if concurrency.get("concurrent") else "one after the other"
        out.append(f"  test runs     {how}: {concurrency.get('reason') or '-'}")
    compiled = evaluation.get("compiled")
    if compiled:  # how much of the candidate's Python its test run did not compile again
        out.append(
            f"  compiled      {compiled['reused']} of {compiled['files']} Python files reused "
            "from the bytecode cache"
        )
    if evaluation.get("confined"):  # where the candidate's own code could write
        out.append(f"  confined      {evaluation['confined']}")
    for name in ("new_failures", "fixed"):
        if evaluation.get(name):
            out.append(f"  {name.replace('_', ' '):<13} {', '.join(evaluation[name][:10])}")
    lost = evaluation.get("lost") or evaluation.get("missing") or {}  # `missing`: older rows
    if lost:
        items = lost.items() if isinstance(lost, dict) else ((t, "absent") for t in lost)
        out.append(f"  {'lost':<13} " + ", ".join(f"{t} ({what})" for t, what in list(items)[:10]))
    if approvals:
        out.append("Decisions")
        for a in approvals:
            out.append(
                f"  {local_time(a['at'])}  {a['decision']:<11} by {a['user']} (uid {a['uid']})"
                + (f": {a['reason']}" if a.get("reason") else "")
            )
    rounds = r.get("rounds") or []
    if len(rounds) > 1 or any(x.get("prompt") for x in rounds):
        out.append(
            f"Rounds ({len(rounds)}; `overseer show --json` has each one's prompt and replies)"
        )
        out += [f"  {round_line(x)}" for x in rounds]
    timings = r.get("phase_timings") or {}
    if timings:
        out.append("Phase timings  " + "  ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
    if events:
        out.append("Events")
        for e in events:
            what = f"{e['kind']} {e.get('phase') or ''}".strip()
            extra = f" {e['duration']:.2f}s" if e.get("duration") is not None else ""
            summary = f"  {e['summary']}" if e.get("summary") else ""
            external = (e.get("detail") or {}).get("external_ms") if e.get("summary") else None
            if external:  # where the phase's time went: the rest was overseer's own
                summary += f"  [{external_text(external)}]"
            elif not summary and e.get("detail"):
                summary = "  " + ", ".join(
                    f"{k}={str(v)[:12] if k.endswith('commit') else v}"
                    for k, v in e["detail"].items()
                    if k not in ("target",) and v not in (None, [], "")
                )
            out.append(f"  {local_time(e['at'])[11:]}  {what}{extra}{summary}")
    analysis = r.get("analysis_results") or {}
    if analysis:
        out.append(
            f"Analysis at {str(analysis.get('commit', ''))[:7]}: {analysis.get('summary', '')}"
        )
    if r.get("rationale"):
        out.append(f"Rationale\n  {r['rationale']}")
    if r.get("generated_code"):
        out.append("Diff")
        out.append(r["generated_code"].rstrip("\n"))
    return visible("\n".join(out), lines=True)


def pause_line(pause: Pause) -> str:
    """`PAUSED since 2026-05-01 03:12:09 by alice (deploy freeze) — …`"""
    since = f" since {local_time(pause.get('at'))}" if pause.get("at") else ""
    reason = f" ({pause['reason']})" if pause.get("reason") else ""
    return f"PAUSED{since} by {pause.get('user', '?')}{reason} — `overseer resume` to lift it"


def last_cycle_lines(cycle: LastCycle, indent: str = "  ", *, named: bool = False) -> list[str]:
    """The last cycle's line, and what the test command printed when the target could not be
    evaluated."""
    lines = [indent + last_cycle_text(cycle, named=named)]
    if cycle.get("not_evaluable"):
        if cycle.get("command"):
            lines.append(f"{indent}    $ {cycle['command']}")
        lines.extend(
            indent + line
            for line in output_lines(cycle.get("output_tail") or "", indent="    │ ").splitlines()
            if line
        )
    return lines


def cycle_text(current: dict[str, Any]) -> str:
    """`1a2b3c4d EVALUATE (tests 3/10), since 2026-05-01 12:00:03`"""
    progress = current.get("progress")
    counted = f" (tests {progress['done']}/{progress['total']})" if progress else ""
    return (
        f"{current['cycle_id'][:8]} {current.get('phase') or 'starting'}{counted}, "
        f"since {local_time(current['since'])}"
    )


def target_line(t: dict[str, Any], *, offline: bool = False) -> str:
    """One target: its state (and running cycle), next cycle, budget, health:
    `target proj (/srv/proj) on main: RUNNING cycle 1a2b3c4d EVALUATE … · next cycle … · …`"""
    branch = f" on {t['branch']}" if t.get("branch") else ""
    line = f"target {t['name']} ({t['path']}){branch}"
    if t.get("healthy") is False:
        return line + f": UNUSABLE — {t.get('reason')}; no cycle runs on it"
    state = t.get("state")
    if state and not offline:
        line += f": {state.upper()}"
        if t.get("current"):
            line += f" cycle {cycle_text(t['current'])}"
        elif state == "waiting":
            line += " for a free cycle slot"
        if t.get("schedule"):
            when = "none while paused" if state == "paused" else local_time(t.get("next_run"))
            line += f" · {t['schedule']}, next cycle {when}"
    if t.get("budget"):
        line += f" · {budget_text(t['budget'])}"
    if t.get("unconfined"):  # the change's code may write anywhere this user may
        line += f" · tests NOT CONFINED: {t['unconfined']}"
    return line


def status_text(s: dict[str, Any], *, offline: bool = False) -> str:
    """`overseer status`, for a person."""
    out = []
    flags = [
        s["state"].upper(),
        f"autonomy {s['autonomy']}",
        "dry-run on" if s["dry_run"] else "dry-run OFF",
        "approval required" if s["require_approval"] else "approval per policy",
        f"max {s['max_changes']} change(s)",
    ]
    who = f" (pid {s['pid']})" if s.get("pid") else ""
    out.append(f"overseer {s['version']}{who} · " + " · ".join(flags))
    paused = s.get("paused")
    if paused:
        out.append(pause_line(paused))
    if s.get("dry_run_why"):
        out.append(f"dry-run {'on' if s['dry_run'] else 'off'}: {s['dry_run_why']}")
    targets = s.get("targets") or []
    if not offline:
        when = "none while paused" if paused else local_time(s.get("next_run"))
        out.append(f"schedule {s['schedule']} · next cycle {when}")
        current = s.get("current")
        if current and not any(t.get("state") for t in targets):  # a daemon before fleets
            out.append(f"now: cycle on {current['target']}: {cycle_text(current)}")
    for t in targets:
        out.append(target_line(t, offline=offline))
        if t.get("last_cycle"):
            out.extend(last_cycle_lines(t["last_cycle"]))
    if not targets and s.get("last_cycle"):  # no configured target: the last on any
        out.extend(last_cycle_lines(s["last_cycle"], indent="", named=True))
    out.append(f"policy {s['policy']} ({s['policy_version']}) · state {s['state_dir']}")
    if s.get("history_problem"):  # what this status says lacks what the history holds
        verb = "READ" if offline else "WRITTEN"
        out.append(f"HISTORY NOT {verb}: {s['history_problem']}")
    for g in s.get("generators") or []:
        if g.get("healthy") is False:
            line = f"generator {g.get('label') or g['name']} OFF since {local_time(g.get('since'))}"
            if offline:  # what the last run found; nobody checks it again until the next
                line += f" (last recorded {local_time(s.get('generators_at'))}): {g.get('reason')}"
            else:
                line += f": {g.get('reason')} — checked again at {local_time(g.get('next_check'))}"
            out.append(line)
    for n in s.get("notifications") or []:
        line = f"notify {n['url']}: "
        if n["ok"]:
            line += f"ok · {n['sent']} sent"
        else:
            line += f"FAILING — {n['last_error']} ({n['failures']} failed send(s)"
            line += f", {n['pending']} to retry)" if n["pending"] else ", given up)"
        if n["dropped"]:
            line += f" · {n['dropped']} dropped"
        out.append(line)
    pending = s.get("pending_approvals") or []
    out.append(f"Awaiting a decision ({len(pending)})")
    for p in pending:
        expires = f" · expires {local_time(p['expires_at'])}" if p.get("expires_at") else ""
        score = p.get("success_score")
        predicted = f" · {success_text(score)}" if isinstance(score, int | float) else ""
        out.append(
            f"  {p['improvement_id'][:8]}  {p['status']:<17} {p.get('change_type') or '-':<12} "
            f"{p.get('risk_level') or '-':<6} {p.get('target_file') or '-'}{predicted}{expires}"
        )
    return visible("\n".join(out), lines=True)
