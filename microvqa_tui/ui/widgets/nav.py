"""The top bar: one tab per screen (number key to switch), and the store in use."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

TABS: tuple[tuple[str, str], ...] = (
    ("pipeline", "Pipeline"),
    ("browse", "Browse"),
    ("review", "Review"),
    ("duplicates", "Duplicates"),
    ("stats", "Stats"),
    ("export", "Export"),
)


class NavTab(Static):
    def __init__(self, number: int, mode: str, title: str, current: bool) -> None:
        super().__init__(
            f" {number} {title} ", classes="nav-tab -current" if current else "nav-tab"
        )
        self.mode = mode

    def on_click(self) -> None:
        self.app.switch_mode(self.mode)


class NavBar(Horizontal):
    """`microvqa │ 1 Pipeline  2 Browse … │ store`; the current screen's tab is highlighted."""

    def __init__(self, current: str) -> None:
        super().__init__(id="nav")
        self.current = current

    def compose(self) -> ComposeResult:
        yield Static(" microvqa ", id="nav-brand")
        for number, (mode, title) in enumerate(TABS, start=1):
            yield NavTab(number, mode, title, mode == self.current)
        yield Static(self.app.sub_title, id="nav-store")
