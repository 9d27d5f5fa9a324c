"""Command palette (Ctrl+P): every action by name — go to a screen, run a stage, ingest, and
each key binding of the current screen and of the app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from microvqa_tui.ui.widgets.nav import TABS


class MicroVQACommands(Provider):
    def commands(self) -> Iterator[tuple[str, Callable[[], object], str]]:
        app = self.app
        for number, (mode, title) in enumerate(TABS, start=1):
            yield f"Go to {title}", partial(app.switch_mode, mode), f"screen {number}"
        yield "Ingest a source…", app.action_ingest, "read figure–caption pairs into the store"
        from microvqa_tui.pipeline.steps import STEPS

        for step in STEPS:
            yield f"Run stage: {step.title}", partial(app.run_stage, step.name), step.description
        yield (
            "Cancel the running stage",
            app.action_cancel_stage,
            "stops at the next batch boundary",
        )
        yield "Check the environment (doctor)", app.action_doctor, "torch, CUDA, llama.cpp, models"
        yield "Toggle light/dark theme", app.action_toggle_dark_theme, "Ctrl+T"
        yield "Help", app.action_help, "keys and screens (F1)"
        target = self.screen  # the screen the palette was opened from
        seen = set()
        for binding in getattr(target, "BINDINGS", []):
            if isinstance(binding, tuple):
                binding = Binding(*binding)
            if not binding.description or binding.action in seen:
                continue
            seen.add(binding.action)
            help_text = (
                f"{target.MODE} screen · key {binding.key.split(',')[0]}"
                if hasattr(target, "MODE")
                else ""
            )
            yield (
                f"{getattr(target, 'MODE', '').title()}: {binding.description}",
                partial(target.run_action, binding.action),
                help_text,
            )

    async def discover(self) -> Hits:
        for title, callback, help_text in self.commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self.commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
