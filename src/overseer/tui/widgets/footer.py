"""The footer, which leaves out a few keys when it is compact (a narrow terminal), so that
`? Help` and `q Quit` stay in sight; those keys still work, and the legend lists them."""

from __future__ import annotations

from typing import Any

from textual.widgets import Footer as TextualFooter


class Footer(TextualFooter):
    def __init__(self, *, roomy_only: frozenset[str] = frozenset(), **kw: Any) -> None:
        super().__init__(**kw)
        self.roomy_only = roomy_only  # actions shown only when the footer is not compact

    def compose(self) -> Any:
        for widget in super().compose():
            if self.compact and getattr(widget, "action", None) in self.roomy_only:
                continue
            yield widget

    def watch_compact(self, compact: bool) -> None:
        self.refresh(recompose=True)  # the keys it leaves out change with it
