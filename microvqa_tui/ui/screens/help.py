"""The help screen (F1 or ?): what each screen is for and every key binding, read from the
screens' BINDINGS so it never goes out of date."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Label, Static


def key_label(keys: str) -> str:
    names = {
        "right_square_bracket": "]",
        "left_square_bracket": "[",
        "question_mark": "?",
        "escape": "Esc",
        "enter": "Enter",
    }
    parts = []
    for key in keys.split(","):
        key = key.strip()
        key = names.get(key, key)
        if key.startswith("ctrl+"):
            key = "Ctrl+" + key[5:].upper()
        elif key.startswith("f") and key[1:].isdigit():
            key = key.upper()
        parts.append(key)
    return "/".join(parts)


def binding_lines(bindings) -> list[Content]:
    lines = []
    for binding in bindings:
        if isinstance(binding, tuple):
            binding = Binding(*binding)
        if not binding.description:
            continue
        lines.append(
            Content.assemble(
                "  ", (key_label(binding.key).rjust(9), "b $accent"), "  ", binding.description
            )
        )
    return lines


def help_content(app) -> Content:
    from microvqa_tui.ui.app import SCREENS_IN_ORDER

    lines: list[Content] = [
        Content(
            "microvqa curates figure–caption pairs into a microscopy multiple-choice VQA "
            "dataset. Work flows left to right through the screens; every long task runs in "
            "the background and can be cancelled."
        ),
        Content(""),
        Content.from_markup("[b]Everywhere[/]"),
        *binding_lines(app.BINDINGS),
        Content.assemble(
            "  ", ("Ctrl+P".rjust(9), "b $accent"), "  ", "command palette: every action by name"
        ),
    ]
    for number, screen in enumerate(SCREENS_IN_ORDER, start=1):
        lines += [
            Content(""),
            Content.from_markup(
                f"[b]{number} {screen.MODE.title()}[/] — [$text-muted]{escape(screen.HELP)}[/]"
            ),
            *binding_lines(screen.BINDINGS),
        ]
    return Content("\n").join(lines)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,f1,question_mark", "dismiss(None)", "Close")
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-wide", id="help-dialog"):
            yield Label("Help — keys and screens", classes="dialog-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(help_content(self.app), id="help-text")
            yield Label("Esc closes", classes="dialog-foot")
