"""A log pane that keeps the last lines as theme-aware markup (RichLog only knows Rich styles,
which cannot follow the light/dark theme)."""

from __future__ import annotations

from collections import deque

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static


class LogPane(VerticalScroll):
    def __init__(self, *, max_lines: int = 500, id: str | None = None) -> None:
        super().__init__(id=id, classes="log-pane")
        self.lines: deque[Content] = deque(maxlen=max_lines)

    def compose(self) -> ComposeResult:
        yield Static("", classes="log-text")

    def write(self, markup: str) -> None:
        self.lines.append(Content.from_markup(markup))
        self.query_one(".log-text", Static).update(Content("\n").join(self.lines))
        self.call_after_refresh(self.scroll_end, animate=False)

    @property
    def text(self) -> str:
        return "\n".join(line.plain for line in self.lines)
