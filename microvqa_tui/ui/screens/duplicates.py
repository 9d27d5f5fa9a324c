"""Duplicates: near-duplicate groups from `microvqa dedup`, members side by side (image and
text), the proposed keeper, and one key per decision for the whole group."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, HorizontalScroll, Vertical
from textual.content import Content
from textual.markup import escape
from textual.widgets import DataTable, Static

from microvqa_tui.services.dups import GroupsPage, Member, group_members, groups_page
from microvqa_tui.ui.screens.base import BaseScreen
from microvqa_tui.ui.screens.modals import ConfirmModal
from microvqa_tui.ui.widgets.detail import FigureImage
from microvqa_tui.ui.workers import SerialRunner, run_blocking
from microvqa_tui.vocabulary import (
    DUP_DISMISSED,
    DUP_PENDING,
    DUP_RESOLVED,
    REVIEW_REJECTED,
)
from microvqa_tui.vocabulary import GROUP_KEEP_ALL as KEEP_ALL
from microvqa_tui.vocabulary import GROUP_KEEP_KEEPER as KEEP_KEEPER
from microvqa_tui.vocabulary import GROUP_REJECT as REJECT_GROUP

DECISION_STYLE = {
    DUP_PENDING: "$warning",
    DUP_RESOLVED: "$success",
    DUP_DISMISSED: "$accent",
    REVIEW_REJECTED: "$error",
}
ACTION_TEXT = {
    KEEP_KEEPER: "kept the keeper, rejected the others",
    KEEP_ALL: "kept all (not duplicates)",
    REJECT_GROUP: "rejected the whole group",
}
EMPTY = (
    "No duplicate groups yet — run dedup first: select “Near-duplicates” on the Pipeline "
    "screen (1), or `microvqa run dedup`. Groups of near-identical images, captions and "
    "questions then show here, with a proposed keeper."
)


class MemberCard(Vertical):
    def __init__(self, member: Member, kind: str) -> None:
        super().__init__(classes="member-card -keeper" if member.keeper else "member-card")
        self.member = member
        self.kind = kind

    def compose(self) -> ComposeResult:
        m = self.member
        badge = "[b $success]KEEPER[/] " if m.keeper else ""
        sim = "" if m.similarity is None else f" · sim {m.similarity:.3f}"
        review = f" · {escape(m.review)}" if m.review else ""
        yield Static(
            Content.from_markup(f"{badge}[b]{escape(m.title)}[/]{sim}{review}"),
            classes="member-title",
        )
        image = FigureImage(classes="member-figure")
        yield image
        yield Static(escape(m.text), classes="member-text")

    def on_mount(self) -> None:
        self.query_one(FigureImage).show(self.member.image, self.member.image_note)


class DuplicatesScreen(BaseScreen):
    MODE = "duplicates"
    AUTO_FOCUS = "#dup-groups"
    HELP = (
        "Groups of near-duplicate images, captions or questions. k keeps the proposed keeper "
        "and rejects the others (their MCQs, or their images/captions in exports); a keeps all "
        "(not duplicates); x rejects the whole group; u puts your last decided group back to "
        "pending. f shows decided groups too."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("k", "decide('keep_keeper')", "Keep keeper"),
        Binding("a", "decide('keep_all')", "Keep all"),
        Binding("x", "decide('reject_group')", "Reject group"),
        Binding("u", "undo", "Undo"),
        Binding("f", "toggle_pending", "Pending/all"),
        Binding("n,j", "move(1)", "Next", show=False),
        Binding("p", "move(-1)", "Previous", show=False),
        Binding("r", "refresh", "Refresh", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.pending_only = True
        self.page: GroupsPage | None = None
        self.queue = SerialRunner(self, "duplicates")
        self.shown_group: str | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="dup-header")
        with Horizontal(id="dup-body"):
            yield DataTable(id="dup-groups", cursor_type="row", zebra_stripes=True)
            with Vertical(id="dup-group"):
                yield Static("", id="dup-info")
                yield HorizontalScroll(id="dup-members")

    def on_mount(self) -> None:
        table = self.query_one("#dup-groups", DataTable)
        table.add_column("kind", key="kind", width=8)
        table.add_column("size", key="size", width=4)
        table.add_column("sim", key="sim", width=5)
        table.add_column("decision", key="decision", width=9)
        table.add_column("keeper", key="keeper", width=12)
        super().on_mount()

    # ------------------------------------------------------------------ loading
    def load(self) -> None:
        store, pending = self.store, self.pending_only
        self.queue.submit(
            lambda: groups_page(store, pending_only=pending),
            self._show_groups,
            "reading duplicate groups",
        )

    def _show_groups(self, page: GroupsPage | None) -> None:
        self.page = page
        table = self.query_one("#dup-groups", DataTable)
        cursor = table.cursor_row
        table.clear()
        header = self.query_one("#dup-header", Static)
        if page is None:
            header.update(Content.from_markup("[b]Duplicates[/]"))
            self._show_empty(EMPTY)
            return
        scope = "pending groups" if self.pending_only else "all groups"
        header.update(
            Content.from_markup(
                f"[b]Duplicates[/] · {page.total:,} {scope} · {page.pending:,} pending of "
                f"{page.all_groups:,} · [$text-muted]f: {'show all' if self.pending_only else 'pending only'}[/]"
            )
        )
        for row in page.rows:
            style = DECISION_STYLE.get(row["decision"], "$text")
            table.add_row(
                row["kind"],
                str(row["size"]),
                f"{row['max_similarity']:.2f}",
                Content.from_markup(f"[{style}]{escape(row['decision'])}[/]"),
                row["keeper_id"][:12],
                key=row["group_id"],
            )
        if not page.rows:
            self._show_empty("No pending groups left: every group is decided. f shows them all.")
            return
        table.move_cursor(row=min(max(cursor, 0), len(page.rows) - 1))
        self._show_selected()

    def _show_empty(self, text: str) -> None:
        self.shown_group = None
        self.query_one("#dup-info", Static).update(
            Content.from_markup(f"[$text-muted]{escape(text)}[/]")
        )
        self.query_one("#dup-members").remove_children()

    def selected(self) -> dict | None:
        table = self.query_one("#dup-groups", DataTable)
        if not self.page or not self.page.rows or table.cursor_row < 0:
            return None
        return self.page.rows[min(table.cursor_row, len(self.page.rows) - 1)]

    @on(DataTable.RowHighlighted, "#dup-groups")
    def _highlighted(self) -> None:
        self._show_selected()

    def _show_selected(self) -> None:
        group = self.selected()
        if group is None or group["group_id"] == self.shown_group:
            return
        self.shown_group = group["group_id"]
        store = self.store
        method = f"{group['method']} ≥ {group['threshold']:.2f}"
        reason = f" — {escape(group['keeper_reason'])}" if group.get("keeper_reason") else ""
        decided = f" by {escape(group['decided_by'])}" if group.get("decided_by") else ""
        style = DECISION_STYLE.get(group["decision"], "$text")
        self.query_one("#dup-info", Static).update(
            Content.from_markup(
                f"[b]{escape(group['kind'])} group[/] of {group['size']} · {escape(method)} · "
                f"decision [{style}]{escape(group['decision'])}[/]{decided}\n"
                f"[$text-muted]proposed keeper[/] {escape(group['keeper_id'][:12])}{reason}"
            )
        )
        run_blocking(
            self,
            lambda: (group["group_id"], group["kind"], group_members(store, group)),
            on_success=self._show_members,
            group="dup-members",
            exclusive=True,
            context="loading the group's members",
        )

    def _show_members(self, result: tuple[str, str, list[Member]]) -> None:
        group_id, kind, members = result
        if group_id != self.shown_group:
            return
        container = self.query_one("#dup-members", HorizontalScroll)
        container.remove_children()
        # Side by side: share the width, but keep each card readable (scroll beyond that).
        width = max(34, min(64, (container.size.width or 120) // max(1, len(members)) - 1))
        cards = [MemberCard(m, kind) for m in members]
        for card in cards:
            card.styles.width = width
        container.mount_all(cards)

    # ------------------------------------------------------------------ decisions
    def action_decide(self, action: str) -> None:
        group = self.selected()
        if group is None:
            self.notify("no group selected", severity="warning")
            return
        reviewer = self.mvqa.reviewer
        group_id = group["group_id"]

        def op():
            result = reviewer.decide_group(group_id, action)
            return result, groups_page(self.store, pending_only=self.pending_only)

        def done(outcome) -> None:
            result, page = outcome
            changed = result.mcqs_changed
            extra = f"; {changed} MCQs rejected" if changed else ""
            self.notify(f"{ACTION_TEXT[action]}{extra} · u undoes", title="Duplicates")
            self.shown_group = None
            self.mvqa.data_changed()
            self.loaded_version = self.mvqa.data_version
            self._show_groups(page)

        if action == REJECT_GROUP:

            def confirmed(ok: bool | None) -> None:
                if ok:
                    self.queue.submit(op, done, "deciding the group")

            self.app.push_screen(
                ConfirmModal(
                    f"Reject all {group['size']} members?",
                    "Every member's MCQs are rejected (undo with u).",
                    confirm="Reject group",
                    danger=True,
                ),
                callback=confirmed,
            )
            return
        self.queue.submit(op, done, "deciding the group")

    def action_undo(self) -> None:
        reviewer = self.mvqa.reviewer

        def op():
            result = reviewer.undo_group()
            return result, groups_page(self.store, pending_only=self.pending_only)

        def done(outcome) -> None:
            result, page = outcome
            restored = result.mcqs_changed
            extra = f"; {restored} MCQ reviews restored" if restored else ""
            self.notify(f"group {result.group_id[:12]} is pending again{extra}", title="Duplicates")
            self.shown_group = None
            self.mvqa.data_changed()
            self.loaded_version = self.mvqa.data_version
            self._show_groups(page)

        self.queue.submit(op, done, "undo")

    def action_toggle_pending(self) -> None:
        self.pending_only = not self.pending_only
        self.shown_group = None
        self.load()

    def action_move(self, step: int) -> None:
        table = self.query_one("#dup-groups", DataTable)
        if table.row_count:
            table.move_cursor(row=max(0, min(table.row_count - 1, table.cursor_row + step)))
