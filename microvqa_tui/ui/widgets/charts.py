"""Terminal charts drawn with block characters and theme colours (no plotting library)."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

EIGHTHS = " ▏▎▍▌▋▊▉█"
LEVELS = " ▁▂▃▄▅▆▇█"


def hbar(value: float, maximum: float, width: int) -> str:
    """A horizontal bar of `width` cells at most, with eighth-cell resolution."""
    if maximum <= 0 or width <= 0 or value <= 0:
        return ""
    eighths = max(1, round(value / maximum * width * 8))
    full, part = divmod(eighths, 8)
    return "█" * full + (EIGHTHS[part] if part else "")


class BarChart(Widget):
    """Labelled horizontal bars: one row per (label, value)."""

    DEFAULT_CSS = """
    BarChart { height: auto; }
    """

    data: reactive[list[tuple[str, float]]] = reactive(list, layout=True)

    def __init__(
        self, data: list[tuple[str, float]] | None = None, *, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.set_reactive(BarChart.data, list(data or []))

    def get_content_height(self, container, viewport, width) -> int:
        return max(1, len(self.data))

    def render(self) -> Content:
        if not self.data:
            return Content.from_markup("[$text-muted]no data yet[/]")
        label_width = min(max(len(label) for label, _ in self.data), 28)
        values = [value for _, value in self.data]
        number_width = max(len(f"{v:,.0f}") for v in values)
        bar_width = max(4, self.size.width - label_width - number_width - 3)
        top = max(values) or 1
        lines = []
        for label, value in self.data:
            bar = hbar(value, top, bar_width)
            lines.append(
                Content.assemble(
                    (label[:label_width].rjust(label_width), "$text"),
                    " ",
                    (f"{value:,.0f}".rjust(number_width), "bold"),
                    " ",
                    (bar, "$accent"),
                )
            )
        return Content("\n").join(lines)


class Histogram(Widget):
    """Vertical bars (one per bin) over `height` rows, with the range under the axis."""

    DEFAULT_CSS = """
    Histogram { height: 10; }
    """

    counts: reactive[list[int]] = reactive(list)

    def __init__(
        self,
        counts: list[int] | None = None,
        *,
        lo: float = 0.0,
        hi: float = 1.0,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.lo = lo
        self.hi = hi
        self.set_reactive(Histogram.counts, list(counts or []))

    def render(self) -> Content:
        if not self.counts or not any(self.counts):
            return Content.from_markup("[$text-muted]no scores yet[/]")
        rows = max(1, self.size.height - 2)
        bins = len(self.counts)
        column = max(1, min(4, (self.size.width - 8) // bins))
        top = max(self.counts)
        lines = []
        for row in range(rows, 0, -1):
            cells = []
            for count in self.counts:
                level = count / top * rows
                if level >= row:
                    char = "█"
                elif level > row - 1:
                    char = LEVELS[max(1, round((level - (row - 1)) * 8))] if count else " "
                else:
                    char = " "
                cells.append(char * column)
            label = f"{top:>6,}" if row == rows else " " * 6
            lines.append(Content.assemble((label, "$text-muted"), "│", ("".join(cells), "$accent")))
        width = bins * column
        lines.append(Content.assemble(" " * 6, "└", ("─" * width, "$text-muted")))
        lo, mid, hi = f"{self.lo:g}", f"{(self.lo + self.hi) / 2:g}", f"{self.hi:g}"
        gap = max(1, (width - len(lo) - len(mid) - len(hi)) // 2)
        axis = lo + " " * gap + mid + " " * max(1, width - len(lo) - gap - len(mid) - len(hi)) + hi
        lines.append(Content.assemble(" " * 7, (axis, "$text-muted")))
        return Content("\n").join(lines)
