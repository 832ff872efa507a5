"""The selected change: why its risk is what it is, its tests, and its diff, highlighted."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from overseer.tui.model import clock_time
from overseer.vocabulary import success_text


def describe(row: dict[str, Any]) -> Group:
    head = Text()
    head.append(f"{row['improvement_id'][:8]} ", style="bold")
    head.append(
        f"{row['status'].replace('_', ' ')}\n",
        style="bold yellow" if row["status"].startswith(("awaiting", "ready")) else "bold",
    )
    where = f"{row['target']} · " if row.get("target") else ""
    head.append(
        f"{where}{row.get('change_type') or '-'} · risk {row.get('risk_level') or '-'} · {row.get('target_file') or '-'}\n"
    )
    score = row.get("success_score")
    head.append(success_text(score if isinstance(score, int | float) else None))
    if row.get("tests_passed") is not None:
        head.append(
            f" · tests {row['tests_passed']} passed, {row.get('tests_failed') or 0} failed on its branch"
        )
    delta = row.get("performance_delta")
    head.append(f" · perf {delta:+.1f} %" if isinstance(delta, int | float) else " · perf -")
    head.append("\n")
    if row.get("summary"):
        head.append(f"{row['summary']}\n", style="italic")
    feature = row.get("feature")
    if isinstance(feature, dict) and feature.get("text"):
        head.append("Feature test: ", style="bold")
        head.append(f"{feature['text']}\n")
    reasons = row.get("risk_reasons") or []
    if reasons:
        head.append("Why this risk and gate:\n", style="bold")
        for reason in reasons:
            head.append(f"  · {reason}\n")
    if row.get("failure_reason"):
        head.append(f"{row['failure_reason']}\n", style="yellow")
    for earlier in row.get("similar_rejections") or []:
        head.append("Rejected before: ", style="bold magenta")
        head.append(f"{earlier.get('target_file')} by {earlier['user']}: {earlier['reason']}\n")
    if row.get("awaiting_since") and row["status"] in ("awaiting_approval", "ready_to_promote"):
        head.append(f"waiting since {clock_time(row['awaiting_since'])}\n", style="dim")
    parts: list[Any] = [head]
    diff = row.get("generated_code")
    if diff:
        parts.append(
            Syntax(diff, "diff", theme="ansi_dark", word_wrap=False, background_color="default")
        )
    elif "generated_code" not in row:
        parts.append(Text("loading the diff …", style="dim"))
    return Group(*parts)


class Detail(VerticalScroll):
    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(Text("Select a change to see its diff.", style="dim"), id="detail-body")

    def show(self, row: dict[str, Any] | None) -> None:
        body = self.query_one("#detail-body", Static)
        body.update(describe(row) if row else Text("Select a change to see its diff.", style="dim"))
