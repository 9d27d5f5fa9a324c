"""Live progress of a long task: description, bar, items done, rate and ETA."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import ProgressBar, Static


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class TaskProgress(Vertical):
    """Call `start`, `advance` and `finish` from the UI thread (the screen's message handlers)."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, id: str | None = None
    ) -> None:
        super().__init__(id=id, classes="task-progress")
        self.clock = clock
        self.total: int | None = None
        self.done = 0
        self._started = 0.0
        self._ticker = None

    def compose(self) -> ComposeResult:
        yield Static("idle", classes="progress-title")
        bar = ProgressBar(total=None, show_eta=False, show_percentage=True)
        bar.display = False  # an idle bar would pulse (and make snapshots time-dependent)
        yield bar
        yield Static("", classes="progress-stats")

    def start(self, description: str, total: int | None) -> None:
        self.total = total
        self.done = 0
        self._started = self.clock()
        self.query_one(".progress-title", Static).update(description)
        bar = self.query_one(ProgressBar)
        bar.update(total=total, progress=0)
        bar.display = True
        self.add_class("-running")
        self._show_stats()
        if self._ticker is None:  # elapsed time and rate move even between advances
            self._ticker = self.set_interval(1.0, self._show_stats)

    def advance(self, done: int) -> None:
        self.done = done
        self.query_one(ProgressBar).update(progress=done)
        self._show_stats()

    def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None

    def finish(self, summary: str) -> None:
        self._stop_ticker()
        self.remove_class("-running")
        self.query_one(".progress-title", Static).update(summary)
        bar = self.query_one(ProgressBar)
        if self.total is not None:
            bar.update(progress=self.done)
        else:
            bar.display = False  # an unknown total would keep pulsing

    def reset(self, text: str = "idle") -> None:
        self._stop_ticker()
        self.total = None
        self.done = 0
        self.remove_class("-running")
        self.query_one(".progress-title", Static).update(text)
        bar = self.query_one(ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = False
        self.query_one(".progress-stats", Static).update("")

    def stats_text(self) -> str:
        elapsed = max(self.clock() - self._started, 1e-9)
        rate = self.done / elapsed
        of = f" / {self.total:,}" if self.total is not None else ""
        text = f"{self.done:,}{of} items · {rate:,.1f}/s · {format_duration(elapsed)} elapsed"
        if self.total is not None and rate > 0 and self.done < self.total:
            text += f" · ETA {format_duration((self.total - self.done) / rate)}"
        return text

    def _show_stats(self) -> None:
        self.query_one(".progress-stats", Static).update(self.stats_text())
