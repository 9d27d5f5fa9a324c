"""Browse: a paginated, sortable table over MCQs, QAs or figures with filters, and a detail
pane showing the figure, caption, QA, MCQ, signals, graph neighbours and hold-out reason.

The reviewer can accept (a) or reject (r) the QA or MCQ under the cursor and undo (u), with
the Review screen's keys and service (`services.review.Reviewer`, the append-only
`decisions` table). A QA decision is a human label: the graph step learns from it on its next
run (which retrains because its inputs changed) and the label wins over the score.

Every page is one LanceDB query (filter + projection + offset/limit, see `services.query`), run in
an exclusive worker, so paging a 100k-row table costs a page, and the UI never waits on it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.markup import escape
from textual.widgets import Static

from microvqa_tui.services.detail import Detail, load_detail
from microvqa_tui.services.query import Page, fetch_page, task_options
from microvqa_tui.services.views import VIEWS, Column, Filter, Sort
from microvqa_tui.ui import page_cache
from microvqa_tui.ui.screens.base import BaseScreen
from microvqa_tui.ui.widgets.detail import DetailView, undone_text
from microvqa_tui.ui.widgets.filters import FilterBar
from microvqa_tui.ui.widgets.pagetable import PageColumn, PageTable
from microvqa_tui.ui.workers import SerialRunner, run_blocking
from microvqa_tui.vocabulary import (
    REVIEW_ACCEPTED,
    REVIEW_OF_ACTION,
    REVIEW_REJECTED,
    STATUS_HELD_OUT,
    bloom_label,
)

PAGE_SIZE = 50
ITEM_TYPE = {"mcqs": "mcq", "qas": "qa", "figures": "figure"}


def cell(column: Column, value: Any) -> Any:
    if value is None:
        return "–"
    if column.kind == "id":
        return str(value)[:10]
    if column.kind == "float":
        return f"{value:.2f}"
    if column.kind == "bloom":
        return bloom_label(value)
    if column.kind == "int":
        return str(value)
    text = str(value).replace("\n", " ")
    if column.name in ("task_str", "task_type"):
        text = text.replace("_", " ")
    if column.width and len(text) > column.width:
        text = text[: column.width - 1] + "…"
    if column.name == "review":
        style = {REVIEW_ACCEPTED: "$success", REVIEW_REJECTED: "$error"}.get(text)
        return Content.from_markup(f"[{style}]{escape(text)}[/]") if style else text
    if column.name == "status" and text == STATUS_HELD_OUT:
        return Content.from_markup(f"[$warning]{escape(text)}[/]")
    return text


class BrowseScreen(BaseScreen):
    MODE = "browse"
    AUTO_FOCUS = "#browse-table"
    HELP = (
        "Page through MCQs, QAs or figures. Filters apply at once (search and ranges on Enter). "
        "s sorts by the column under the cursor (ascending, descending, off); Enter opens the "
        "details of a row; v reviews the filtered MCQs one by one. a accepts, r rejects the QA or "
        "MCQ under the cursor, u undoes your last decision: a QA decision is a label the graph "
        "step learns from on its next run (Pipeline: Stage 2)."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right_square_bracket", "next_page", "Next page"),
        Binding("left_square_bracket", "prev_page", "Prev page"),
        Binding("s", "sort", "Sort"),
        Binding("t", "cycle_view", "Table"),
        Binding("f", "focus_filters", "Filters"),
        Binding("x", "clear_filters", "Clear"),
        Binding("d", "toggle_detail", "Detail"),
        Binding("v", "review_selection", "Review these"),
        Binding("a", "decide('accept')", "Accept"),
        Binding("r", "decide('reject')", "Reject"),
        Binding("u", "undo", "Undo"),
        Binding("g", "first_page", "First", show=False),
        Binding("G", "last_page", "Last", show=False),
        Binding("escape", "close_detail", "Close", show=False),
        Binding("f5", "refresh", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view_name = "mcqs"
        self.filter = Filter()
        self.sort: Sort | None = None
        self.page_offset = 0
        self.page: Page | None = None
        self.detail: Detail | None = None
        self.detail_open = False
        self._columns_for: tuple[str, Sort | None] | None = None
        self._total_cache: tuple[str, Filter, int] | None = None
        self.pages_shown = 0  # for tests and the benchmark: bumps when a page is on screen
        self.queue = SerialRunner(self, "browse-review")  # decisions in key order
        self.decided = 0  # decisions (and undos) written so far, for tests
        self._keep_cursor_on: str | None = None  # the row a reload after a decision stays on

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="browse-body"):
            yield FilterBar(view=self.view_name, id="browse-filters")
            with Vertical(id="browse-main"):
                yield Static("", id="page-info")
                yield PageTable(id="browse-table")
            yield DetailView(id="browse-detail")

    def on_mount(self) -> None:
        self.query_one("#browse-detail", DetailView).display = False
        if self.mvqa.store is None:
            self._show_cached_first_page()
        super().on_mount()

    def _shows_first_page(self) -> bool:
        return self.filter.is_empty() and self.sort is None and self.page_offset == 0

    def _is_first_page(self, page: Page) -> bool:
        """A live read of the unfiltered, unsorted first page (the only reads that carry their
        table version, see `query.fetch_page`): the one worth keeping."""
        return not page.cached and page.version is not None

    def _show_cached_first_page(self) -> None:
        """While LanceDB loads, show the first page kept from the last session when its table
        has not changed since (see `ui.page_cache`); the live read replaces it."""
        if not self._shows_first_page():
            return
        cached = page_cache.load(self.mvqa.settings.store, self.view_name, PAGE_SIZE)
        if cached is not None:
            page = Page(self.view.table, cached["rows"], cached["total"], 0, PAGE_SIZE, cached=True)
            self._show_page(page)

    @property
    def view(self):
        return VIEWS[self.view_name]

    # ------------------------------------------------------------------ loading
    def load(self) -> None:
        store, view = self.store, self.view
        run_blocking(
            self,
            lambda: task_options(store, view),
            on_success=self.query_one(FilterBar).set_task_options,
            group="browse-options",
            exclusive=True,
        )
        self._total_cache = None
        self.load_page()

    def load_page(self, offset: int | None = None) -> None:
        if offset is not None:
            self.page_offset = max(0, offset)
        if self.mvqa.store is None:
            return  # the read once the store is open uses the state set here
        store, view, flt, sort, start = (
            self.store,
            self.view,
            self.filter,
            self.sort,
            self.page_offset,
        )
        total = None
        if self._total_cache and self._total_cache[:2] == (self.view_name, flt):
            total = self._total_cache[2]
        self.query_one("#page-info", Static).update(self._info_text(loading=True), layout=False)
        run_blocking(
            self,
            lambda: fetch_page(
                store, view, flt, sort=sort, offset=start, limit=PAGE_SIZE, total=total
            ),
            on_success=self._show_page,
            group="browse-page",
            exclusive=True,
            context="reading a page",
        )

    def _show_page(self, page: Page) -> None:
        if page.view != self.view_name:
            return
        self.page = page
        self.page_offset = page.offset
        self._total_cache = (self.view_name, self.filter, page.total)
        table = self.query_one("#browse-table", PageTable)
        view = self.view
        marks = {}
        if self.sort:
            marks[self.sort.column] = " ▼" if self.sort.descending else " ▲"
        if self._columns_for != (self.view_name, self.sort):
            table.set_columns(
                [PageColumn(c.name, c.label, c.width or 12) for c in view.columns], marks
            )
            self._columns_for = (self.view_name, self.sort)
        rows = [
            [cell(column, row.get(column.name)) for column in view.columns] for row in page.rows
        ]
        keys = [row[view.key] for row in page.rows]
        table.set_rows(rows, keys, cursor=self._cursor_after_reload(table, keys))
        self.query_one("#page-info", Static).update(self._info_text(), layout=False)
        self.pages_shown += 1
        if self._is_first_page(page):
            page_cache.save(
                self.mvqa.settings.store,
                self.view_name,
                view.table,
                page.version,
                page.rows,
                page.total,
                PAGE_SIZE,
            )
        if not page.rows:
            self.query_one("#browse-detail", DetailView).clear(self._empty_text())

    def _empty_text(self) -> str:
        if self.filter.is_empty():
            return f"No {self.view.title} in the store yet."
        return f"No {self.view.title} match the filter ({self.filter.describe()}); x clears it."

    def _info_text(self, loading: bool = False) -> Content:
        view = self.view
        page = self.page if self.page and self.page.view == self.view_name else None
        if page is None:
            return Content.from_markup(f"[b]{view.title}[/] · loading…")
        if page.total == 0:
            body = f"[b]{view.title}[/] · [$warning]{escape(self._empty_text())}[/]"
        else:
            first, last = page.offset + 1, page.offset + len(page.rows)
            body = (
                f"[b]{view.title}[/] · {first:,}–{last:,} of {page.total:,}"
                f" · page {page.page_number:,}/{page.page_count:,}"
            )
        if self.sort:
            arrow = "↓" if self.sort.descending else "↑"
            body += f" · sorted by {escape(self.sort.column)} {arrow}"
        body += f" · [$text-muted]filter:[/] {escape(self.filter.describe())}"
        if loading:
            body += " · [$text-muted]loading…[/]"
        elif page.cached:
            body += " · [$text-muted]opening the store…[/]"
        return Content.from_markup(body)

    def _cursor_after_reload(self, table: PageTable, keys: list[str]) -> int:
        """0 for a new page; after a decision, the decided row (or, when the filter no longer
        takes it, the row now in its place), so the reviewer keeps their place."""
        key, self._keep_cursor_on = self._keep_cursor_on, None
        if key is None:
            return 0
        return keys.index(key) if key in keys else table.cursor_row

    # ------------------------------------------------------------------ filters
    @on(FilterBar.Changed, "#browse-filters")
    def _filter_changed(self, event: FilterBar.Changed) -> None:
        view_changed = event.view != self.view_name
        self.view_name = event.view
        self.filter = event.filter
        if view_changed:
            self.sort = None
            self.page = None
            self.close_detail()
            store, view = self.store, self.view
            run_blocking(
                self,
                lambda: task_options(store, view),
                on_success=self.query_one(FilterBar).set_task_options,
                group="browse-options",
                exclusive=True,
            )
        self.load_page(0)

    def action_focus_filters(self) -> None:
        for widget in self.query_one(FilterBar).query("Select, Input"):
            if widget.display and widget.parent and widget.parent.display:
                widget.focus()
                return

    def action_clear_filters(self) -> None:
        self.query_one(FilterBar).clear()

    def action_cycle_view(self) -> None:
        from textual.widgets import Select

        order = list(VIEWS)
        nxt = order[(order.index(self.view_name) + 1) % len(order)]
        self.query_one("#f-view", Select).value = nxt

    # ------------------------------------------------------------------ paging and sorting
    def action_next_page(self) -> None:
        if self.page and self.page.offset + PAGE_SIZE < self.page.total:
            self.load_page(self.page_offset + PAGE_SIZE)

    def action_prev_page(self) -> None:
        if self.page_offset > 0:
            self.load_page(self.page_offset - PAGE_SIZE)

    def action_first_page(self) -> None:
        self.load_page(0)

    def action_last_page(self) -> None:
        if self.page and self.page.total:
            self.load_page((self.page.total - 1) // PAGE_SIZE * PAGE_SIZE)

    def action_sort(self, column: str | None = None) -> None:
        if column is None:
            column = self.query_one("#browse-table", PageTable).current_column
            if column is None:
                return
        if self.sort is None or self.sort.column != column:
            self.sort = Sort(column)
        elif not self.sort.descending:
            self.sort = Sort(column, descending=True)
        else:
            self.sort = None
        self.load_page(0)

    @on(PageTable.HeaderSelected, "#browse-table")
    def _header_selected(self, event: PageTable.HeaderSelected) -> None:
        self.action_sort(event.column)

    # ------------------------------------------------------------------ detail
    @on(PageTable.RowSelected, "#browse-table")
    def _row_selected(self, event: PageTable.RowSelected) -> None:
        if event.key is not None:
            self.open_detail(event.key)

    @on(PageTable.RowHighlighted, "#browse-table")
    def _row_highlighted(self, event: PageTable.RowHighlighted) -> None:
        if self.detail_open and event.key is not None:
            self.open_detail(event.key)

    def current_key(self) -> str | None:
        return self.query_one("#browse-table", PageTable).current_key

    def open_detail(self, key: str) -> None:
        self.detail_open = True
        pane = self.query_one("#browse-detail", DetailView)
        pane.display = True
        store, item_type = self.store, ITEM_TYPE[self.view_name]
        run_blocking(
            self,
            lambda: load_detail(store, item_type, key),
            on_success=self._show_detail,
            group="browse-detail",
            exclusive=True,
            context="loading the details",
        )

    def _show_detail(self, detail: Detail) -> None:
        self.detail = detail
        if self.detail_open:
            self.query_one("#browse-detail", DetailView).show(detail)

    def action_toggle_detail(self) -> None:
        if self.detail_open:
            self.close_detail()
        else:
            key = self.current_key()
            if key:
                self.open_detail(key)

    def action_close_detail(self) -> None:
        self.close_detail()

    def close_detail(self) -> None:
        self.detail_open = False
        self.query_one("#browse-detail", DetailView).display = False

    # ------------------------------------------------------------------ to review
    def action_review_selection(self) -> None:
        if self.view_name != "mcqs":
            self.notify("review works on MCQs: switch the table to MCQs (t)", severity="warning")
            return
        self.mvqa.open_review(self.filter, start=self.current_key())

    # ------------------------------------------------------------------ decisions
    def action_decide(self, action: str) -> None:
        """Accept or reject the row under the cursor (a QA: a label for the graph step)."""
        from microvqa_tui.services.review_items import ITEM_KINDS  # loads the store: lazily

        item_type, key = ITEM_TYPE[self.view_name], self.current_key()
        if item_type not in ITEM_KINDS:
            self.notify("figures are not reviewed: switch to QAs or MCQs (t)", severity="warning")
            return
        if key is None:
            self.notify("no row to decide on", severity="warning")
            return
        reviewer = self.mvqa.reviewer

        def op() -> str:
            reviewer.decide(item_type, key, action)
            later = " · the graph learns it on its next run" if item_type == "qa" else ""
            return f"{REVIEW_OF_ACTION[action]} {item_type} {key[:12]}{later} · u undoes"

        self.queue.submit(op, self._decided, context=f"{action} {item_type} {key[:12]}")

    def action_undo(self) -> None:
        reviewer = self.mvqa.reviewer
        self.queue.submit(lambda: undone_text(reviewer.undo()), self._decided, context="undo")

    def _decided(self, message: str) -> None:
        """After a decision: say so, re-read the page (an MCQ's review column) and the detail
        (its review history); other screens re-read when shown next."""
        self.decided += 1
        self.mvqa.data_changed()
        self.loaded_version = self.mvqa.data_version
        self.notify(message, title="Review")
        key = self._keep_cursor_on = self.current_key()
        self.load_page()
        if self.detail_open and key is not None:
            self.open_detail(key)
