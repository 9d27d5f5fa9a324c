"""The Textual workbench: six screens (as app modes), one per step of the curation work.

    microvqa tui            # or just `microvqa`

Start-up stays fast: the store (LanceDB) is opened in a worker after the first paint, and
model/device checks are lazy, in workers; torch and transformers are never imported at start.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.theme import Theme

from microvqa_tui.config import Settings
from microvqa_tui.errors import Cancelled, MicroVQAError
from microvqa_tui.services.status import Environment, probe_environment
from microvqa_tui.ui.commands import MicroVQACommands
from microvqa_tui.ui.screens.browse import BrowseScreen
from microvqa_tui.ui.screens.duplicates import DuplicatesScreen
from microvqa_tui.ui.screens.export import ExportScreen
from microvqa_tui.ui.screens.help import HelpScreen
from microvqa_tui.ui.screens.pipeline import PipelineScreen
from microvqa_tui.ui.screens.review import ReviewScreen
from microvqa_tui.ui.screens.stats import StatsScreen
from microvqa_tui.ui.workers import run_blocking

if TYPE_CHECKING:
    from microvqa_tui.services.review import Reviewer
    from microvqa_tui.services.views import Filter
    from store import Store

SCREENS_IN_ORDER = (
    PipelineScreen,
    BrowseScreen,
    ReviewScreen,
    DuplicatesScreen,
    StatsScreen,
    ExportScreen,
)

# Two themes with the same hues; the light one keeps text dark on light panels. Colours are
# only used through the theme variables in app.tcss and markup ($accent, $success, ...).
DARK = Theme(
    name="microvqa-dark",
    primary="#4C9EEB",
    secondary="#7AA6C2",
    accent="#E0A526",
    warning="#E5A03A",
    error="#E5534B",
    success="#46B36B",
    foreground="#E1E4E8",
    background="#16191D",
    surface="#1E2228",
    panel="#262B33",
    dark=True,
)
LIGHT = Theme(
    name="microvqa-light",
    primary="#1F6FB8",
    secondary="#3D6E8F",
    accent="#A65F00",
    warning="#9A6200",
    error="#C0362C",
    success="#1E7F3C",
    foreground="#1F2328",
    background="#F6F8FA",
    surface="#FFFFFF",
    panel="#E6EAEF",
    dark=False,
)


def terminal_is_light() -> bool:
    """Best guess from COLORFGBG ("fg;bg", set by many terminals): a light background."""
    value = os.environ.get("COLORFGBG", "")
    try:
        background = int(value.split(";")[-1])
    except ValueError:
        return False
    return background in (7, 15)


def short_path(path: Path) -> str:
    text = str(path)
    home = str(Path.home())
    return "~" + text[len(home) :] if text.startswith(home + os.sep) else text


class MicroVQAApp(App[None]):
    """The workbench. `store` may be passed already open (tests, benchmarks); `clock` and
    `env_probe` are injectable so that snapshots do not depend on the time or the machine."""

    TITLE = "microvqa"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {MicroVQACommands}
    MODES: ClassVar[dict[str, Any]] = {screen.MODE: screen for screen in SCREENS_IN_ORDER}
    DEFAULT_MODE = "pipeline"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "switch_mode('pipeline')", "Pipeline", show=False),
        Binding("2", "switch_mode('browse')", "Browse", show=False),
        Binding("3", "switch_mode('review')", "Review", show=False),
        Binding("4", "switch_mode('duplicates')", "Duplicates", show=False),
        Binding("5", "switch_mode('stats')", "Stats", show=False),
        Binding("6", "switch_mode('export')", "Export", show=False),
        Binding("f1,question_mark", "help", "Help"),
        Binding("ctrl+t", "toggle_dark_theme", "Light/dark", show=False),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        mode: str | None = None,
        clock: Callable[[], datetime] | None = None,
        env_probe: Callable[[Settings], Environment] | None = None,
        subtitle: str | None = None,
        light: bool | None = None,
    ) -> None:
        if mode is not None:
            if mode not in self.MODES:
                raise ValueError(f"unknown screen {mode!r}; screens: {', '.join(self.MODES)}")
            self.DEFAULT_MODE = mode  # start there directly: no other screen is built first
        super().__init__()
        self.settings = settings
        self.store: Store | None = store
        self.clock = clock or (lambda: datetime.now(UTC))
        self.env_probe = env_probe or probe_environment
        self.sub_title = subtitle if subtitle is not None else short_path(settings.store)
        self.light = terminal_is_light() if light is None else light
        self.data_version = 0
        self._store_waiters: list[Callable[[], Any]] = []
        self._reviewer: Reviewer | None = None

    # ------------------------------------------------------------------ start-up
    def on_mount(self) -> None:
        self.register_theme(DARK)
        self.register_theme(LIGHT)
        self.theme = LIGHT.name if self.light else DARK.name
        if self.store is None:
            # After the first paint: importing LanceDB holds the GIL for a second or two, and
            # the first screen (with a kept first page, see `ui.page_cache`) should not wait.
            self.call_after_refresh(self._open_store)

    def _open_store(self) -> None:
        path = self.settings.store
        run_blocking(
            self,
            lambda: _open_store(path),
            on_success=self._store_opened,
            group="store-open",
            context="opening the store",
        )

    def _store_opened(self, store: Store) -> None:
        self.store = store
        waiters, self._store_waiters = self._store_waiters, []
        for callback in waiters:
            callback()

    def when_store_ready(self, callback: Callable[[], Any]) -> None:
        """Call `callback` (on the UI thread) once the store is open: now, if it is."""
        if self.store is not None:
            callback()
        else:
            self._store_waiters.append(callback)

    def data_changed(self) -> None:
        """Something wrote to the store: other screens reload when shown next."""
        self.data_version += 1

    @property
    def reviewer(self) -> Reviewer:
        if self._reviewer is None:
            from microvqa_tui.services.review import Reviewer

            assert self.store is not None
            # Decisions carry the real time (the app's clock may be frozen for snapshots).
            self._reviewer = Reviewer(self.store, self.settings.user)
        return self._reviewer

    # ------------------------------------------------------------------ the one error path
    def show_error(self, error: BaseException, *, context: str = "") -> None:
        """MicroVQAError → its message (and hint) as a notification; anything else is a bug,
        reported in one line (the traceback goes to the Textual log, not the screen)."""
        if isinstance(error, Cancelled):
            self.notify(str(error), title=context or "Cancelled", severity="warning")
            return
        if isinstance(error, MicroVQAError):
            self.notify(str(error), title=context or "Error", severity="error", timeout=8)
            return
        self.log.error(f"{context}: {error!r}")
        import traceback

        self.log.error("".join(traceback.format_exception(error)))
        self.notify(
            f"unexpected {type(error).__name__}: {error}",
            title=f"{context} (a bug)" if context else "Internal error (a bug)",
            severity="error",
            timeout=10,
        )

    # ------------------------------------------------------------------ actions
    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_dark_theme(self) -> None:
        self.light = not self.light
        self.theme = LIGHT.name if self.light else DARK.name

    def _pipeline(self) -> PipelineScreen:
        self.switch_mode("pipeline")
        return self.screen  # type: ignore[return-value]

    def action_ingest(self) -> None:
        screen = self._pipeline()
        self.call_after_refresh(screen.action_ingest)

    def run_stage(self, name: str) -> None:
        screen = self._pipeline()
        self.call_after_refresh(lambda: self.when_store_ready(lambda: screen.start(name)))

    def action_cancel_stage(self) -> None:
        self._pipeline().action_cancel()

    def action_doctor(self) -> None:
        screen = self._pipeline()
        self.call_after_refresh(screen.action_doctor)

    def open_review(self, flt: Filter, start: str | None = None) -> None:
        """Switch to Review on a selection from Browse."""
        self.switch_mode("review")
        screen = self.screen
        if isinstance(screen, ReviewScreen):
            self.call_after_refresh(lambda: screen.set_selection(flt, start))


# Reads in the TUI may lag writes made by another process (a stage run from a second
# terminal) by at most this long; checking more often costs a manifest read per query.
STORE_FRESHNESS_S = 2.0


def _open_store(path: Path) -> Store:
    from store import open_store

    return open_store(path, fresh_after_s=STORE_FRESHNESS_S)


def run_app(settings: Settings, screen: str | None = None) -> None:
    """Entry point of `microvqa tui`: open on `screen` (default: the Pipeline screen)."""
    # textual-image asks the terminal what it can draw before Textual takes over the screen;
    # importing the UI above already did that (widgets.detail). LanceDB is imported after the
    # first paint (see `MicroVQAApp.on_mount`): importing it earlier, even in a thread, only
    # delays the first paint, as the import holds the GIL.
    MicroVQAApp(settings, mode=screen).run()
