"""What has worked, as `overseer stats` says it, for the chosen target or every one: success by
change type and risk, by area, the funnel of new tests per generator, the repair rounds a kept
change needed, the best and worst finding kinds, and the predictor. `t` goes to the next
target, as on the dashboard."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from overseer.tui.widgets.targets import next_target
from overseer.vocabulary import FUNNEL, FUNNEL_TITLES


def _table(*columns: str, words: int = 1) -> Table:
    """A table whose first `words` columns are words, the rest figures (right-aligned)."""
    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
    for number, name in enumerate(columns):
        table.add_column(name, justify="left" if number < words else "right", no_wrap=True)
    return table


# After the funnel's stages: the attempts it lost to SAFETY, and those waiting for a person.
EXTRA_STAGES = (("denied", "denied by SAFETY"), ("waiting", "waiting for approval"))


def _section(title: str) -> Text:
    return Text(f"\n{title}", style="bold underline")


def stats_view(s: dict[str, Any]) -> Group:
    """The `stats` answer as a person reads it (the same figures as `overseer stats`)."""
    parts: list[RenderableType] = [_section("By change type and risk (real attempts)")]
    if not s.get("patterns"):
        parts.append(Text("  no real attempts yet", style="dim"))
    else:
        table = _table(
            "type", "risk", "attempts", "kept", "avg score", "rollbacks", "avg perf", words=2
        )
        for p in s["patterns"]:
            score, perf = p.get("average_score"), p.get("average_perf_delta")
            table.add_row(
                str(p.get("change_type") or "-"),
                str(p.get("risk_level") or "-"),
                str(p.get("attempts", 0)),
                str(p.get("kept") or 0),
                f"{score:.2f}" if isinstance(score, int | float) else "-",
                str(p.get("rollbacks") or 0),
                f"{perf:+.1f}%" if isinstance(perf, int | float) else "-",
            )
        parts.append(table)
    if s.get("areas"):
        parts.append(_section("By area"))
        table = _table("area", "attempts", "kept", "rollbacks")
        for a in s["areas"]:
            table.add_row(
                str(a.get("area") or "-"),
                str(a.get("attempts", 0)),
                str(a.get("kept") or 0),
                str(a.get("rollbacks") or 0),
            )
        parts.append(table)
    parts.append(_section("New tests, per generator"))
    funnel = s.get("new_tests") or {}
    if not funnel:
        parts.append(Text("  none written yet (new_tests: enabled, with a model)", style="dim"))
    else:
        # A stage a row, a generator a column: the funnel reads downwards, and fits 80
        # columns with a few generators.
        table = _table("stage", *funnel)
        stages = [*zip(FUNNEL, FUNNEL_TITLES, strict=True), *EXTRA_STAGES]
        for key, title in stages:
            table.add_row(title, *(str(f.get(key, 0)) for f in funnel.values()))
        parts.append(table)
        parts.append(
            Text(
                "  each stage a subset of the one above; denied: the test edits an existing "
                "one, or asserts nothing",
                style="dim",
            )
        )
    if s.get("repair_rounds"):
        parts.append(_section("Repair rounds a kept change needed (0: its first answer)"))
        for generator, used in s["repair_rounds"].items():
            rounds = " · ".join(f"{n} round(s): {count}" for n, count in sorted(used.items()))
            parts.append(Text(f"  {generator}  {rounds}"))
    for title, key in (
        ("Most successful finding kinds (at least 2 outcomes)", "most_successful"),
        ("Least successful", "least_successful"),
    ):
        parts.append(_section(title))
        if not s.get(key):
            parts.append(Text("  none yet", style="dim"))
        for k in s.get(key) or []:
            parts.append(
                Text(
                    f"  {k['finding_kind']}  {k['generator']}  {k['kept']}/{k['attempts']} kept "
                    f"({k['rate']:.0%})"
                )
            )
    predictor = s.get("predictor") or {}
    parts.append(_section("Predictor (every target)"))
    if predictor.get("version") is None:
        parts.append(Text(f"  {predictor.get('note', 'not trained yet')}"))
    else:
        brier = (
            f"Brier {predictor['brier']:.3f} over {predictor['scored']} scored predictions"
            if predictor.get("brier") is not None
            else "no scored predictions yet"
        )
        parts.append(
            Text(f"  model v{predictor['version']} on {predictor.get('rows')} outcomes · {brier}")
        )
    return Group(*parts)


class StatsScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,s", "back", "Back"),
        Binding("t", "next_target", "Next target"),
    ]

    def __init__(self, target: str | None) -> None:
        super().__init__()
        self.target = target
        self.stats: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Static("Stats", id="stats-title")
        with VerticalScroll(id="stats"):
            yield Static(Text("loading …", style="dim"), id="stats-body")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#stats").focus()
        self.load()

    def heading(self) -> str:
        which = f"target {self.target}" if self.target is not None else "every target"
        return f"Stats — {which}  (t: the next target, esc: back)"

    @work(exclusive=True, group="stats")
    async def load(self) -> None:
        from overseer.client import DaemonError, DaemonUnavailable

        title = self.query_one("#stats-title", Static)
        client = self.app.client  # type: ignore[attr-defined]
        if client is None:
            title.update("Stats — not connected to the daemon")
            return
        title.update(self.heading())
        try:
            stats = await client.stats(self.target)
        except (DaemonError, DaemonUnavailable) as exc:
            if self.is_attached:
                self.query_one("#stats-body", Static).update(Text(str(exc), style="red"))
            return
        if not self.is_attached:
            return  # closed while the answer was on its way
        self.stats = stats
        self.query_one("#stats-body", Static).update(stats_view(stats))

    def action_next_target(self) -> None:
        names = [t["name"] for t in self.app.status.get("targets") or []]  # type: ignore[attr-defined]
        self.target = next_target(names, self.target)
        self.load()

    def action_back(self) -> None:
        self.app.pop_screen()
