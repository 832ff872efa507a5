"""How the CLI shows cycles, attempts and history to a person (JSON output lives in the CLI)."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any, TextIO

import click

from overseer.core.events import (
    ApprovalRequested,
    AttemptsRecovered,
    ChangeApproved,
    ChangePromoted,
    ChangeRejected,
    ChangeRolledBack,
    CycleFinished,
    CycleStarted,
    Event,
    PhaseFinished,
    PhaseProgress,
    PhaseStarted,
    PromotionDeferred,
)

MARKS = {"ok": "✔", "failed": "✘", "skipped": "–"}
COLORS = {"ok": "green", "failed": "red", "skipped": "yellow"}


def local_time(stamp: str | None) -> str:
    if not stamp:
        return "-"
    return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")


class EventPrinter:
    """Prints each phase as it happens. On a terminal, the running phase's line shows progress."""

    def __init__(self, stream: TextIO | None = None, *, debug: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.debug = debug
        self._open_line = False
        self._attempts: set[str] = set()

    def _style(self, text: str, **kw: Any) -> str:
        return click.style(text, **kw) if self.tty else text

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

    def __call__(self, event: Event) -> None:
        if isinstance(event, CycleStarted):
            mode = "dry-run" if event.dry_run else self._style("dry-run OFF", bold=True)
            p = event.parameters
            self._print(
                self._style(f"Cycle {event.cycle_id[:8]}", bold=True)
                + f" ({local_time(event.to_dict()['at'])[11:]}) on {event.target}@{event.branch}"
                f" · {mode} · autonomy {p.get('autonomy')} · max {p.get('max_changes')} change(s)"
                f" · area {p.get('area')}"
            )
        elif isinstance(event, PhaseStarted):
            if event.improvement_id and event.improvement_id not in self._attempts:
                self._attempts.add(event.improvement_id)
                self._print(f" Attempt {event.improvement_id[:8]}")
            self._status(f"  ▶ {event.phase:<9}")
        elif isinstance(event, PhaseProgress):
            if event.total:
                self._status(f"  ▶ {event.phase:<9} {event.message} {event.done}/{event.total}")
            elif event.done is None:
                if self.debug:
                    self._print(f"    … {event.message}")
                else:
                    self._status(f"  ▶ {event.phase:<9} {event.message}")
        elif isinstance(event, PhaseFinished):
            mark = self._style(MARKS.get(event.outcome, "?"), fg=COLORS.get(event.outcome))
            took = f"{event.duration:5.1f} s" if event.outcome != "skipped" else "      "
            self._print(f"  {mark} {event.phase:<9} {took}  {event.summary}")
        elif isinstance(event, ApprovalRequested):
            self._print(
                self._style(f"  ⏸ awaiting approval: {event.improvement_id[:8]}", fg="yellow")
                + f" ({event.risk_level} risk). Decide with `overseer approve {event.improvement_id[:8]}`"
                f" or `overseer reject {event.improvement_id[:8]} --reason …`"
            )
        elif isinstance(event, ChangeApproved):
            self._print(
                f"  ✔ approved by {event.user}" + (f": {event.reason}" if event.reason else "")
            )
        elif isinstance(event, ChangeRejected):
            self._print(f"  ✘ rejected by {event.user}: {event.reason}")
        elif isinstance(event, ChangePromoted):
            pushed = (
                "" if event.pushed is None else (" · pushed" if event.pushed else " · push FAILED")
            )
            self._print(
                self._style(f"  ⇒ promoted to {event.branch} @ {event.commit[:7]}", fg="green")
                + pushed
            )
        elif isinstance(event, PromotionDeferred):
            self._print(self._style(f"  ⏸ {event.reason}", fg="yellow"))
        elif isinstance(event, ChangeRolledBack):
            self._print(
                f"  ↩ rolled back by {event.user} with revert {event.revert_commit[:7]}: {event.reason}"
            )
        elif isinstance(event, AttemptsRecovered):
            parts = []
            if event.closed:
                parts.append(f"closed {len(event.closed)} interrupted attempt(s)")
            if event.promoted:
                parts.append(f"recorded {len(event.promoted)} promotion(s) found on the branch")
            if event.worktrees_removed:
                parts.append(f"removed {event.worktrees_removed} stray worktree(s)")
            self._print(f"Recovered {event.target}: " + ", ".join(parts or ["branches cleaned"]))
        elif isinstance(event, CycleFinished):
            self._print(f"Cycle {event.cycle_id[:8]} finished ({event.status}): {event.summary}")


def _tests(row: dict[str, Any]) -> str:
    if row.get("tests_passed") is None:
        return "-"
    return f"{row['tests_passed']}✔ {row.get('tests_failed') or 0}✘"


def attempts_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No attempts recorded yet."
    header = ("ID", "STATUS", "TARGET", "TYPE", "RISK", "FILE", "TESTS", "COMMIT", "STARTED")
    body = [
        (
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

    return "\n".join([line(header), *(line(b) for b in body)])


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
    evaluation = r.get("evaluation") or {}
    for name in ("new_failures", "missing", "fixed"):
        if evaluation.get(name):
            out.append(f"  {name.replace('_', ' '):<13} {', '.join(evaluation[name][:10])}")
    if approvals:
        out.append("Decisions")
        for a in approvals:
            out.append(
                f"  {local_time(a['at'])}  {a['decision']:<11} by {a['user']} (uid {a['uid']})"
                + (f": {a['reason']}" if a.get("reason") else "")
            )
    timings = r.get("phase_timings") or {}
    if timings:
        out.append("Phase timings  " + "  ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
    if events:
        out.append("Events")
        for e in events:
            what = f"{e['kind']} {e.get('phase') or ''}".strip()
            extra = f" {e['duration']:.2f}s" if e.get("duration") is not None else ""
            summary = f"  {e['summary']}" if e.get("summary") else ""
            if not summary and e.get("detail"):
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
    return "\n".join(out)
