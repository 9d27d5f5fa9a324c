"""The filter bar of Browse and Review: table view, status, review decision, task type, Bloom
level, difficulty tier, a score range on a chosen column, and a text search.

It only collects values: `current()` returns a `Filter` and `Changed` is posted when any field
changes (Selects at once, Inputs on Enter). The SQL is built by `services.views.build_where`.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Select

from microvqa_tui.services.views import VIEWS, Filter, View
from microvqa_tui.vocabulary import BLOOM_LEVELS, REVIEWS, STATUSES, bloom_label

TIERS = ("easy", "medium", "hard")
ALL_FIELDS = ("view", "status", "review", "task", "bloom", "tier", "range", "text")


def _options(values) -> list[tuple[str, object]]:
    return [(str(v).replace("_", " "), v) for v in values]


class FilterField(Vertical):
    """A label over one control."""

    def __init__(self, name: str, label: str, *controls) -> None:
        super().__init__(classes="filter-field", id=f"field-{name}")
        self.label = label
        self.controls = controls

    def compose(self) -> ComposeResult:
        yield Label(self.label, classes="filter-label")
        if len(self.controls) > 1:
            with Horizontal(classes="filter-pair"):
                yield from self.controls
        else:
            yield from self.controls


class FilterBar(Vertical):
    """Vertical (Browse sidebar) or horizontal (`-row` class, Review) set of filter fields."""

    class Changed(Message):
        def __init__(self, bar: FilterBar, view: str, flt: Filter) -> None:
            super().__init__()
            self.bar = bar
            self.view = view
            self.filter = flt

        @property
        def control(self) -> FilterBar:
            return self.bar

    def __init__(
        self,
        *,
        view: str = "mcqs",
        initial: Filter | None = None,
        fields: tuple[str, ...] = ALL_FIELDS,
        views: tuple[str, ...] = ("mcqs", "qas", "figures"),
        id: str | None = None,
        classes: str = "",
    ) -> None:
        super().__init__(id=id, classes=f"filter-bar {classes}".strip())
        self.view_name = view
        self.initial = initial or Filter()
        self.fields = fields
        self.views = views
        self._last: tuple[str, Filter] | None = None

    @property
    def view(self) -> View:
        return VIEWS[self.view_name]

    def compose(self) -> ComposeResult:
        f = self.initial
        select = {"compact": True, "allow_blank": True, "prompt": "any"}
        if "view" in self.fields:
            yield FilterField(
                "view",
                "Table",
                Select(
                    [(VIEWS[v].title, v) for v in self.views],
                    value=self.view_name,
                    allow_blank=False,
                    compact=True,
                    id="f-view",
                ),
            )
        if "status" in self.fields:
            yield FilterField(
                "status",
                "Status",
                Select(_options(STATUSES), value=f.status or Select.NULL, id="f-status", **select),
            )
        if "review" in self.fields:
            yield FilterField(
                "review",
                "Review",
                Select(_options(REVIEWS), value=f.review or Select.NULL, id="f-review", **select),
            )
        if "task" in self.fields:
            initial_tasks = [f.task] if f.task else []
            yield FilterField(
                "task",
                "Task",
                Select(_options(initial_tasks), value=f.task or Select.NULL, id="f-task", **select),
            )
        if "bloom" in self.fields:
            blooms = [(bloom_label(level), level) for level in BLOOM_LEVELS]
            yield FilterField(
                "bloom",
                "Bloom",
                Select(
                    blooms,
                    value=f.bloom if f.bloom is not None else Select.NULL,
                    id="f-bloom",
                    **select,
                ),
            )
        if "tier" in self.fields:
            yield FilterField(
                "tier",
                "Tier",
                Select(_options(TIERS), value=f.tier or Select.NULL, id="f-tier", **select),
            )
        if "range" in self.fields:
            yield FilterField(
                "range",
                "Range",
                Select(
                    [(c.replace("_", " "), c) for c in self.view.range_columns or ("score",)],
                    id="f-range-col",
                    compact=True,
                    allow_blank=False,
                ),
            )
            yield FilterField(
                "range-values",
                "min … max",
                Input(
                    _num(f.range_min), placeholder="min", type="number", compact=True, id="f-min"
                ),
                Input(
                    _num(f.range_max), placeholder="max", type="number", compact=True, id="f-max"
                ),
            )
        if "text" in self.fields:
            yield FilterField(
                "text",
                "Search (Enter)",
                Input(f.text, placeholder="text…", compact=True, id="f-text"),
            )

    def on_mount(self) -> None:
        self._apply_view(initial=True)

    # ------------------------------------------------------------------ view switching
    def _apply_view(self, *, initial: bool = False) -> None:
        view = self.view
        shown = {
            "status": view.status,
            "review": view.review,
            "task": view.task_column is not None,
            "bloom": view.bloom,
            "tier": view.tier,
            "range": bool(view.range_columns),
            "range-values": bool(view.range_columns),
            "text": bool(view.search_columns),
        }
        for name, visible in shown.items():
            for field in self.query(f"#field-{name}"):
                field.display = visible
        if "range" in self.fields and view.range_columns:
            column = self.query_one("#f-range-col", Select)
            column.set_options([(c.replace("_", " "), c) for c in view.range_columns])
            wanted = self.initial.range_column if initial else None
            column.value = wanted if wanted in view.range_columns else view.range_columns[0]
        if initial:
            self._last = (self.view_name, self.current())

    def set_task_options(self, tasks: list[str]) -> None:
        if "task" not in self.fields:
            return
        select = self.query_one("#f-task", Select)
        current = select.value
        select.set_options(_options(tasks))
        if current in tasks:
            select.value = current

    # ------------------------------------------------------------------ reading
    def current(self) -> Filter:
        def value(selector: str):
            found = self.query(selector)
            if not found:
                return None
            widget = found.first()
            if isinstance(widget, Select):
                return None if widget.is_blank() else widget.value
            return widget.value

        return Filter(
            status=value("#f-status"),
            review=value("#f-review"),
            task=value("#f-task"),
            bloom=value("#f-bloom"),
            tier=value("#f-tier"),
            range_column=value("#f-range-col"),
            range_min=_float(value("#f-min")),
            range_max=_float(value("#f-max")),
            text=(value("#f-text") or "").strip(),
        )

    def set_filter(self, flt: Filter) -> None:
        """Show `flt` in the controls (without posting Changed)."""
        values = {
            "#f-status": flt.status,
            "#f-review": flt.review,
            "#f-bloom": flt.bloom,
            "#f-tier": flt.tier,
        }
        if flt.task:
            task = self.query("#f-task")
            if task:
                select = task.first(Select)
                known = [value for _, value in select._options if value is not Select.NULL]
                if flt.task not in known:
                    select.set_options(_options([*known, flt.task]))
        values["#f-task"] = flt.task
        for selector, value in values.items():
            for select in self.query(selector):
                if value is None:
                    select.clear()
                else:
                    select.value = value
        inputs = {"#f-min": _num(flt.range_min), "#f-max": _num(flt.range_max), "#f-text": flt.text}
        for selector, text in inputs.items():
            for field in self.query(selector):
                field.value = text
        if flt.range_column:
            for select in self.query("#f-range-col"):
                select.value = flt.range_column
        self._last = (self.view_name, self.current())

    def clear(self) -> None:
        for select in self.query(Select):
            if select.id not in ("f-view", "f-range-col"):
                select.clear()
        for field in self.query(Input):
            field.value = ""
        self._changed()

    # ------------------------------------------------------------------ events
    def _changed(self) -> None:
        """Post `Changed` when the filter differs from the last one posted (programmatic
        updates of the options post Select.Changed too; those change nothing)."""
        state = (self.view_name, self.current())
        if state == self._last:
            return
        self._last = state
        self.post_message(self.Changed(self, *state))

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select.id == "f-view" and event.value != self.view_name:
            self.view_name = str(event.value)
            self._apply_view()
        self._changed()

    @on(Input.Submitted)
    def _input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._changed()


def _float(value) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
