"""Review: one MCQ at a time with its figure; accept (a), reject (r), edit (e), next/previous
(j/k or n/p), undo (u), and bulk decisions on the filtered selection (A/X, with a confirm).

Decisions go through `microvqa_tui.services.review.Reviewer` (the audit trail is written at once). All
store work of this screen runs in one serial queue, so "accept, then next" always sees the
accept and undo always follows the decision it reverts, however fast the keys come.
Navigation is by key order within the filter, which stays stable while decisions change rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.markup import escape
from textual.widgets import Static

from microvqa_tui.services.detail import Detail, load_detail
from microvqa_tui.services.query import neighbour_key, position_of, task_options
from microvqa_tui.services.views import VIEWS, Filter, and_where, build_where, quote
from microvqa_tui.ui.screens.base import BaseScreen
from microvqa_tui.ui.screens.modals import ConfirmModal, EditModal
from microvqa_tui.ui.widgets.detail import (
    FigureImage,
    decision_lines,
    figure_line,
    mcq_markup,
    section,
    undone_text,
)
from microvqa_tui.ui.widgets.filters import FilterBar
from microvqa_tui.ui.workers import SerialRunner
from microvqa_tui.vocabulary import REVIEW_OF_ACTION, REVIEW_UNREVIEWED

if TYPE_CHECKING:
    from microvqa_tui.services.review import Reviewer

DEFAULT_FILTER = Filter(review=REVIEW_UNREVIEWED)
REVIEW_FIELDS = ("status", "review", "task", "bloom", "tier", "text")


@dataclass
class ReviewState:
    key: str | None
    detail: Detail | None = None
    position: int = 0
    total: int = 0
    message: str = ""


class ReviewScreen(BaseScreen):
    MODE = "review"
    AUTO_FOCUS = "#review-item"
    HELP = (
        "Review the MCQs of the filter one by one (default: the unreviewed ones). a accepts, "
        "r rejects (both move on), e edits question/options/answer/CoT, u undoes your last "
        "decision (a bulk decision at once). A / X accept or reject every MCQ of the filter "
        "after a confirmation. Every decision is written to the decisions table at once."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "decide('accept')", "Accept"),
        Binding("r", "decide('reject')", "Reject"),
        Binding("e", "edit", "Edit"),
        Binding("j,n", "move(1)", "Next"),
        Binding("k,p", "move(-1)", "Previous"),
        Binding("u", "undo", "Undo"),
        Binding("A", "bulk('accept')", "Accept all"),
        Binding("X", "bulk('reject')", "Reject all"),
        Binding("f", "focus_filters", "Filters"),
        Binding("g", "first", "First", show=False),
        Binding("escape", "focus_item", "Back to item", show=False),
        Binding("f5", "refresh", "Refresh", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter = DEFAULT_FILTER
        self.state = ReviewState(None)
        self.queue = SerialRunner(self, "review")
        self._cursor: str | None = None  # touched only by the queue's thread
        self._start: str | None = None
        self.applied = 0  # decisions shown so far (for tests)

    def compose_body(self) -> ComposeResult:
        yield Static("", id="review-header")
        yield FilterBar(
            view="mcqs",
            initial=self.filter,
            fields=REVIEW_FIELDS,
            id="review-filters",
            classes="-row",
        )
        with Horizontal(id="review-body"):
            with VerticalScroll(id="review-figure"):
                yield FigureImage()
                yield Static("", id="review-caption")
            with VerticalScroll(id="review-item", can_focus=True):
                yield Static("", id="review-text")
        yield Static("", id="review-status")

    @property
    def reviewer(self) -> Reviewer:
        return self.mvqa.reviewer

    # ------------------------------------------------------------------ opening
    def set_selection(self, flt: Filter, start: str | None = None) -> None:
        """Review `flt` (from Browse), starting at `start` when given."""
        self.filter = flt
        self._start = start
        self.query_one(FilterBar).set_filter(flt)
        if self.mvqa.store is not None:
            self.loaded_version = self.mvqa.data_version
            self.load()

    def load(self) -> None:
        store = self.store
        self.queue.submit(lambda: task_options(store, VIEWS["mcqs"]), self._set_tasks)
        start, self._start = self._start, None
        self._submit(lambda: self._goto(start))

    def _set_tasks(self, tasks: list[str]) -> None:
        for bar in self.query(FilterBar):
            bar.set_task_options(tasks)

    # ------------------------------------------------------------------ queue operations
    # (these run in the queue's thread, one at a time)
    def _goto(self, key: str | None, *, message: str = "") -> ReviewState:
        """Show `key` (or, when None or gone, the first item of the filter)."""
        view, flt = VIEWS["mcqs"], self.filter
        if key is None or self.store.get("mcqs", key, ["mcq_id"]) is None:
            key = neighbour_key(self.store, view, flt, None)
        self._cursor = key
        if key is None:
            total = self.store.count("mcqs", build_where(view, flt))
            return ReviewState(None, total=total, message=message)
        position, total = position_of(self.store, view, flt, key)
        detail = load_detail(self.store, "mcq", key, with_graph=False)
        return ReviewState(key, detail, position, total, message)

    def _step(self, direction: int, message: str = "") -> ReviewState:
        """The next (or previous) item of the filter after the cursor. At the end, stay on the
        cursor when it still matches the filter, else step back (after deciding the last
        unreviewed item, the one before it is shown)."""
        view, flt, current = VIEWS["mcqs"], self.filter, self._cursor
        forward = direction > 0
        key = neighbour_key(self.store, view, flt, current, forward=forward)
        if key is None and current is not None:
            if self._matches(current):
                key = current
                message = (
                    message or f"this is the {'last' if forward else 'first'} item of the filter"
                )
            else:
                key = neighbour_key(self.store, view, flt, current, forward=not forward)
            if key is None:
                self._cursor = None
                return ReviewState(None, message=message)
        return self._goto(key, message=message)

    def _matches(self, key: str) -> bool:
        where = and_where(build_where(VIEWS["mcqs"], self.filter), f"mcq_id = {quote(key)}")
        return self.store.count("mcqs", where) > 0

    def _submit(self, fn, *, writes: bool = False) -> None:
        self.queue.submit(fn, self._show_written if writes else self._show, context="review")

    def _show_written(self, state: ReviewState) -> None:
        """After a decision: other screens re-read the store when shown next."""
        self.mvqa.data_changed()
        self.loaded_version = self.mvqa.data_version
        self._show(state)

    # ------------------------------------------------------------------ showing
    def _show(self, state: ReviewState) -> None:
        self.state = state
        header = self.query_one("#review-header", Static)
        where = escape(self.filter.describe())
        user = escape(self.mvqa.settings.user)
        if state.key is None:
            header.update(
                Content.from_markup(f"[b]Review MCQs[/] · filter: {where} · reviewer: {user}"),
                layout=False,
            )
            self.query_one(FigureImage).show(None, "")
            self.query_one("#review-caption", Static).update("")
            self.query_one("#review-text", Static).update(
                Content.from_markup(
                    f"[$text-muted]Nothing to review with this filter ({where}).\n\n"
                    "Change the filter (f), or bring MCQs in: Pipeline (1) runs the stages.[/]"
                )
            )
        else:
            header.update(
                Content.from_markup(
                    f"[b]Review MCQs[/] · {state.position:,} of {state.total:,} · filter: {where} "
                    f"· reviewer: {user}"
                ),
                layout=False,
            )
            self._show_detail(state.detail)
        status = self.query_one("#review-status", Static)
        status.update(
            Content.from_markup(escape(state.message)) if state.message else "", layout=False
        )

    def _show_detail(self, detail: Detail | None) -> None:
        if detail is None or detail.mcq is None:
            return
        self.query_one(FigureImage).show(detail.image, detail.image_note)
        caption = detail.captions[0]["text"] if detail.captions else ""
        self.query_one("#review-caption", Static).update(
            Content.from_markup(
                section("Figure", figure_line(detail.figure))
                + ("\n\n" + section("Caption", escape(caption)) if caption else "")
            )
        )
        parts = [section(f"MCQ {detail.mcq['mcq_id'][:12]}", mcq_markup(detail.mcq))]
        if detail.hold_out_reason:
            parts.append(section("Held out", f"[$warning]{escape(detail.hold_out_reason)}[/]"))
        if detail.qa:
            parts.append(
                section(
                    "Source QA",
                    f"{escape(detail.qa['question'])}\n{escape(detail.qa['answer'])}\n"
                    f"[$text-muted]graph score[/] {detail.qa.get('score') if detail.qa.get('score') is not None else '–'}",
                )
            )
        history = decision_lines(detail)
        if history:
            parts.append(section("Review history", history))
        self.query_one("#review-text", Static).update(Content.from_markup("\n\n".join(parts)))
        self.query_one("#review-item").scroll_home(animate=False)

    # ------------------------------------------------------------------ actions
    def _need_item(self) -> str | None:
        if self.state.key is None:
            self.notify("no item to act on", severity="warning")
        return self.state.key

    def action_decide(self, action: str) -> None:
        key = self._need_item()
        if key is None:
            return
        reviewer = self.reviewer

        def op() -> ReviewState:
            reviewer.decide("mcq", key, action)
            verb = REVIEW_OF_ACTION[action]
            return self._step(1, message=f"{verb} {key[:12]} · u undoes")

        self._submit(op, writes=True)
        self.applied += 1

    def action_move(self, direction: int) -> None:
        self._submit(lambda: self._step(direction))

    def action_first(self) -> None:
        self._submit(lambda: self._goto(None))

    def action_undo(self) -> None:
        reviewer = self.reviewer

        def op() -> ReviewState:
            undone = reviewer.undo()
            mcqs = [u.item_id for u in undone if u.item_type == "mcq"]
            target = mcqs[0] if len(mcqs) == 1 else self._cursor
            return self._goto(target, message=undone_text(undone))

        self._submit(op, writes=True)

    def action_edit(self) -> None:
        key = self._need_item()
        if key is None or self.state.detail is None or self.state.detail.mcq is None:
            return
        reviewer = self.reviewer

        def saved(values: dict | None) -> None:
            if values is None:
                return

            def op() -> ReviewState:
                record = reviewer.edit("mcq", key, values)
                message = (
                    f"edited {', '.join(record.fields)} · u undoes" if record else "nothing changed"
                )
                return self._goto(key, message=message)

            self._submit(op, writes=True)

        self.app.push_screen(EditModal(self.state.detail.mcq), callback=saved)

    def action_bulk(self, action: str) -> None:
        total = self.state.total if self.state.key is not None else 0
        if total == 0:
            self.notify("the filter selects no MCQs", severity="warning")
            return
        where = build_where(VIEWS["mcqs"], self.filter)
        verb = "Accept" if action == "accept" else "Reject"
        reviewer = self.reviewer

        def confirmed(ok: bool | None) -> None:
            if not ok:
                return

            def op() -> ReviewState:
                result = reviewer.bulk("mcq", action, where=where)
                message = (
                    f"{verb.lower()}ed {result.changed:,} MCQs"
                    f" ({result.skipped:,} already were) · u undoes them all"
                )
                return self._goto(None, message=message)

            self._submit(op, writes=True)

        self.app.push_screen(
            ConfirmModal(
                f"{verb} {total:,} MCQs?",
                f"Every MCQ matching [b]{escape(self.filter.describe())}[/] will be marked "
                f"{verb.lower()}ed, each with its own entry in the decisions table "
                "(one undo reverts them all).",
                confirm=f"{verb} {total:,}",
                danger=action == "reject",
            ),
            callback=confirmed,
        )

    def action_focus_filters(self) -> None:
        for widget in self.query_one(FilterBar).query("Select, Input"):
            if widget.display and widget.parent and widget.parent.display:
                widget.focus()
                return

    def action_focus_item(self) -> None:
        self.query_one("#review-item").focus()

    @on(FilterBar.Changed)
    def _filter_changed(self, event: FilterBar.Changed) -> None:
        self.filter = event.filter
        self._submit(lambda: self._goto(None))
