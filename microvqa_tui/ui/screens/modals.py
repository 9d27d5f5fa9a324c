"""Modal dialogs: confirm, ask for a path, edit an MCQ, show an error."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from microvqa_tui.ui.widgets.detail import LETTERS


class ConfirmModal(ModalScreen[bool]):
    """Yes/no with the consequence spelled out. `y`/Enter confirms, `n`/Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "dismiss(False)", "Cancel"),
        Binding("y", "dismiss(True)", "Confirm"),
    ]

    def __init__(
        self, title: str, body: str, *, confirm: str = "Confirm", danger: bool = False
    ) -> None:
        super().__init__(classes="modal")
        self.title_text = title
        self.body = body
        self.confirm = confirm
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.body, classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button(
                    f"{self.confirm} (y)",
                    variant="error" if self.danger else "primary",
                    id="confirm",
                )
                yield Button("Cancel (n)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#confirm", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")


class PathModal(ModalScreen[str | None]):
    """Ask for a file or folder path (ingest source)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, help_text: str, default: str) -> None:
        super().__init__(classes="modal")
        self.title_text = title
        self.help_text = help_text
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.help_text, classes="dialog-body")
            yield Input(
                self.default, placeholder="path to a folder, manifest, parquet or tar", id="path"
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Start (Enter)", variant="primary", id="ok")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._finish()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._finish()
        else:
            self.dismiss(None)

    def _finish(self) -> None:
        value = self.query_one("#path", Input).value.strip()
        if not value:
            self.notify("type a path first", severity="warning")
            return
        self.dismiss(value)


class EditModal(ModalScreen[dict[str, Any] | None]):
    """Edit an MCQ's question, options (one per line), correct option and CoT.

    Returns the changed values for `Reviewer.edit`, or None when cancelled. Validation happens
    in `microvqa_tui.services.review` (one place for the rules); its errors come back as notifications.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("ctrl+s", "save", "Save"),
    ]

    def __init__(self, mcq: dict[str, Any]) -> None:
        super().__init__(classes="modal")
        self.mcq = mcq

    def compose(self) -> ComposeResult:
        mcq = self.mcq
        choices = list(mcq.get("choices") or [])
        with Vertical(classes="dialog dialog-wide"):
            yield Label(f"Edit MCQ {escape(mcq['mcq_id'][:12])}", classes="dialog-title")
            with VerticalScroll(classes="edit-form"):
                yield Label("Question", classes="form-label")
                yield TextArea(
                    mcq["question"], id="edit-question", classes="edit-short", soft_wrap=True
                )
                yield Label("Options, one per line (A, B, C, …)", classes="form-label")
                yield TextArea("\n".join(choices), id="edit-choices", classes="edit-options")
                yield Label("Correct option", classes="form-label")
                yield Select(
                    [(f"{LETTERS[i]}", i) for i in range(max(len(choices), 2))],
                    value=mcq.get("correct_index", 0),
                    allow_blank=False,
                    id="edit-correct",
                )
                yield Label("Chain of thought", classes="form-label")
                yield TextArea(
                    mcq.get("cot") or "", id="edit-cot", classes="edit-cot", soft_wrap=True
                )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (Ctrl+S)", variant="primary", id="save")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#edit-question", TextArea).focus()

    @on(TextArea.Changed, "#edit-choices")
    def _choices_changed(self) -> None:
        """Keep the correct-option list as long as the options list."""
        count = max(2, len(self._choices()))
        select = self.query_one("#edit-correct", Select)
        current = select.value
        select.set_options([(LETTERS[i] if i < len(LETTERS) else str(i), i) for i in range(count)])
        select.value = current if isinstance(current, int) and current < count else 0

    def _choices(self) -> list[str]:
        text = self.query_one("#edit-choices", TextArea).text
        return [line.strip() for line in text.splitlines() if line.strip()]

    def values(self) -> dict[str, Any]:
        return {
            "question": self.query_one("#edit-question", TextArea).text,
            "choices": self._choices(),
            "correct_index": self.query_one("#edit-correct", Select).value,
            "cot": self.query_one("#edit-cot", TextArea).text,
        }

    def action_save(self) -> None:
        self.dismiss(self.values())

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)
