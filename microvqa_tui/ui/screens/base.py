"""What every workbench screen shares: the tab bar, the footer, waiting for the store, and
reloading when another screen changed the data."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from microvqa_tui.ui.widgets.nav import NavBar

if TYPE_CHECKING:
    from microvqa_tui.ui.app import MicroVQAApp
    from store import Store


class BaseScreen(Screen):
    """Subclasses set MODE and HELP, compose their body in `compose_body` and (re)read their
    data in `load`, which runs once the store is open and again whenever the data changed
    while the screen was hidden."""

    MODE: ClassVar[str] = ""
    HELP: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__(id=f"screen-{self.MODE}")
        self.loaded_version = -1

    @property
    def mvqa(self) -> MicroVQAApp:
        return self.app  # type: ignore[return-value]

    @property
    def store(self) -> Store:
        store = self.mvqa.store
        assert store is not None, "the store is not open yet"
        return store

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.mvqa.when_store_ready(self._load_now)

    def on_screen_resume(self) -> None:
        if self.mvqa.store is not None and self.loaded_version not in (-1, self.mvqa.data_version):
            self._load_now()

    def _load_now(self) -> None:
        self.loaded_version = self.mvqa.data_version
        self.load()

    def load(self) -> None:
        """Read what the screen shows (from workers)."""

    def action_refresh(self) -> None:
        """Re-read the store, including writes made by other processes."""
        if self.mvqa.store is None:
            return
        self.mvqa.store.refresh()
        self._load_now()
