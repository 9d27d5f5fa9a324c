"""How long-running work reports progress and learns it was cancelled.

The pipeline only talks to these small interfaces; the CLI plugs in a rich progress bar,
the TUI a reporter that posts Textual messages, tests a recorder.
"""

from __future__ import annotations

import threading
from typing import Protocol

from microvqa_tui.errors import Cancelled


class ProgressReporter(Protocol):
    def start(self, description: str, total: int | None) -> None:
        """A new phase begins; `total` is None when unknown (streaming)."""

    def advance(self, amount: int = 1) -> None:
        """`amount` more items are done."""

    def log(self, message: str) -> None:
        """A line for the log pane / console."""


class NullProgress:
    """Reports nowhere; the default for library calls."""

    def start(self, description: str, total: int | None) -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        pass

    def log(self, message: str) -> None:
        pass


class RecordingProgress:
    """Keeps everything it is told; for tests and for `--json` summaries."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, int | None]] = []
        self.done = 0
        self.lines: list[str] = []

    def start(self, description: str, total: int | None) -> None:
        self.phases.append((description, total))

    def advance(self, amount: int = 1) -> None:
        self.done += amount

    def log(self, message: str) -> None:
        self.lines.append(message)


class CancelToken:
    """Set from another thread (the TUI's cancel key, Ctrl-C); checked between batches."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise `Cancelled` if cancellation was asked for. Call only at batch boundaries,
        so that what was written so far is complete and consistent."""
        if self._event.is_set():
            raise Cancelled("cancelled by the user; completed batches are saved, re-run to resume")
