"""A light table for one page of rows (Browse).

Textual's DataTable renders every cell through Rich with padding; refilling it with a new page
costs ~90 ms of CPU at 160×48, most of the 100 ms budget for "key press → page on screen".
A page is small and replaced whole, so this widget pre-formats each row into one line of
`Content` when the page arrives and draws lines with the Line API (one strip per visible row,
cached until the page changes). Row cursor (up/down/PgUp/PgDn/Home/End, click), a column
cursor (left/right, for "sort by this column"), header clicks, and the messages Browse uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip


@dataclass(frozen=True)
class PageColumn:
    key: str
    label: str
    width: int


class PageTable(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    PageTable {
        background: $surface;
    }
    PageTable > .page-table--header {
        background: $panel;
        color: $text;
        text-style: bold;
    }
    PageTable > .page-table--header-cursor {
        background: $panel;
        color: $accent;
        text-style: bold underline;
    }
    PageTable > .page-table--even {
        background: $boost;
    }
    PageTable > .page-table--cursor {
        background: $primary 30%;
    }
    PageTable:focus > .page-table--cursor {
        background: $primary 60%;
        text-style: bold;
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "page-table--header",
        "page-table--header-cursor",
        "page-table--even",
        "page-table--cursor",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "cursor_page(-1)", "Page up", show=False),
        Binding("pagedown", "cursor_page(1)", "Page down", show=False),
        Binding("home", "cursor_to(0)", "Top", show=False),
        Binding("end", "cursor_to(-1)", "Bottom", show=False),
        Binding("left", "column(-1)", "Column left", show=False),
        Binding("right", "column(1)", "Column right", show=False),
        Binding("enter", "select", "Open", show=False),
    ]

    cursor_row: reactive[int] = reactive(0, always_update=True)
    cursor_column: reactive[int] = reactive(0)

    class RowHighlighted(Message):
        def __init__(self, table: PageTable, key: str | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> PageTable:
            return self.table

    class RowSelected(Message):
        def __init__(self, table: PageTable, key: str | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> PageTable:
            return self.table

    class HeaderSelected(Message):
        def __init__(self, table: PageTable, column: str) -> None:
            super().__init__()
            self.table = table
            self.column = column

        @property
        def control(self) -> PageTable:
            return self.table

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.columns: list[PageColumn] = []
        self.keys: list[str] = []
        self._lines: list[Content] = []
        self._header = Content("")
        self._sort_marks: dict[str, str] = {}
        self._strips: dict[tuple, Strip] = {}

    # ------------------------------------------------------------------ data
    @property
    def row_count(self) -> int:
        return len(self.keys)

    @property
    def current_key(self) -> str | None:
        return self.keys[self.cursor_row] if 0 <= self.cursor_row < len(self.keys) else None

    @property
    def current_column(self) -> str | None:
        return self.columns[self.cursor_column].key if self.columns else None

    def set_columns(
        self, columns: list[PageColumn], sort_marks: dict[str, str] | None = None
    ) -> None:
        self.columns = list(columns)
        self._sort_marks = dict(sort_marks or {})
        self.cursor_column = min(self.cursor_column, max(0, len(self.columns) - 1))
        labels = []
        for column in self.columns:
            mark = self._sort_marks.get(column.key, "")
            labels.append(column.label[: column.width - len(mark)] + mark if mark else column.label)
        self._header = self._row_content(labels)
        self._strips.clear()
        self.refresh()

    def set_rows(
        self, rows: list[list[str | Content]], keys: list[str], *, cursor: int = 0
    ) -> None:
        """Replace the page. `rows[i]` has one cell per column; `keys[i]` identifies the row."""
        self.keys = list(keys)
        self._lines = [self._row_content(row) for row in rows]
        self._strips.clear()
        width = sum(c.width + 1 for c in self.columns) + 1
        self.virtual_size = Size(width, len(self._lines) + 1)
        self.scroll_to(y=0, animate=False, immediate=True)
        self.cursor_row = max(0, min(cursor, len(self.keys) - 1))
        self.refresh()

    def _row_content(self, cells: list[str | Content]) -> Content:
        parts: list[Content] = [Content(" ")]
        for column, value in zip(self.columns, cells, strict=False):
            content = value if isinstance(value, Content) else Content(str(value))
            parts.append(content.truncate(column.width, ellipsis=True, pad=True))
            parts.append(Content(" "))
        return Content("").join(parts)

    # ------------------------------------------------------------------ drawing
    def render_line(self, y: int) -> Strip:
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        if y == 0:
            component = "page-table--header"
            key = ("header", scroll_x, width, self.cursor_column, self.has_focus)
            content = self._header
            row = -1
        else:
            row = y - 1 + scroll_y
            if row >= len(self._lines):
                return Strip.blank(width, self.rich_style)
            if row == self.cursor_row:
                component = "page-table--cursor"
            elif row % 2:
                component = "page-table--even"
            else:
                component = ""
            key = (row, component, scroll_x, width, self.has_focus)
            content = self._lines[row]
        cached = self._strips.get(key)
        if cached is not None:
            return cached
        base = self.get_visual_style(component) if component else self.get_visual_style()
        segments = [
            Segment(text, style.rich_style)
            for text, style in content.render(
                base, end="", parse_style=self.app.stylesheet.parse_style
            )
        ]
        if row == -1 and self.columns:
            segments = self._mark_header(segments, base)
        strip = Strip(segments).crop_extend(scroll_x, scroll_x + width, base.rich_style)
        if len(self._strips) > 512:
            self._strips.clear()
        self._strips[key] = strip
        return strip

    def _mark_header(self, segments: list[Segment], base) -> list[Segment]:
        """Highlight the cursor column's label in the header."""
        start = 1 + sum(c.width + 1 for c in self.columns[: self.cursor_column])
        end = start + self.columns[self.cursor_column].width
        strip = Strip(segments)
        cursor_style = self.get_visual_style("page-table--header-cursor").rich_style
        left, middle, right = strip.divide([start, end, strip.cell_length])
        middle = Strip([Segment(s.text, cursor_style) for s in middle])
        return [*left, *middle, *right]

    def watch_cursor_row(self, old: int, new: int) -> None:
        self._scroll_cursor_visible()
        self.refresh()
        self.post_message(self.RowHighlighted(self, self.current_key))

    def watch_cursor_column(self) -> None:
        self._strips.clear()
        self.refresh()

    def watch_has_focus(self, focused: bool) -> None:
        self.refresh()

    def _scroll_cursor_visible(self) -> None:
        visible = max(1, self.size.height - 1)
        top = int(self.scroll_offset.y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False)
        elif self.cursor_row >= top + visible:
            self.scroll_to(y=self.cursor_row - visible + 1, animate=False)

    # ------------------------------------------------------------------ input
    def move_cursor(self, row: int) -> None:
        if self.keys:
            self.cursor_row = max(0, min(row, len(self.keys) - 1))

    def action_cursor(self, step: int) -> None:
        self.move_cursor(self.cursor_row + step)

    def action_cursor_page(self, direction: int) -> None:
        self.move_cursor(self.cursor_row + direction * max(1, self.size.height - 2))

    def action_cursor_to(self, row: int) -> None:
        self.move_cursor(row if row >= 0 else len(self.keys) - 1)

    def action_column(self, step: int) -> None:
        if self.columns:
            self.cursor_column = max(0, min(self.cursor_column + step, len(self.columns) - 1))

    def action_select(self) -> None:
        if self.current_key is not None:
            self.post_message(self.RowSelected(self, self.current_key))

    def on_click(self, event: Click) -> None:
        scroll_x, scroll_y = self.scroll_offset
        if event.y == 0:
            x = event.x + scroll_x - 1
            for index, column in enumerate(self.columns):
                if 0 <= x < column.width + 1:
                    self.cursor_column = index
                    self.post_message(self.HeaderSelected(self, column.key))
                    return
                x -= column.width + 1
            return
        row = event.y - 1 + scroll_y
        if 0 <= row < len(self.keys):
            if row == self.cursor_row:
                self.post_message(self.RowSelected(self, self.keys[row]))
            else:
                self.cursor_row = row
