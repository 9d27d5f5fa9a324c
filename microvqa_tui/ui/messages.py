"""Messages the workers post back to the screens (from their threads: `post_message` is
thread-safe)."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class ProgressStarted(Message):
    """A new phase of a long task began; `total` is None when unknown."""

    def __init__(self, task: str, description: str, total: int | None) -> None:
        super().__init__()
        self.task = task
        self.description = description
        self.total = total


class ProgressAdvanced(Message):
    """`done` items of the current phase are complete (cumulative, throttled)."""

    def __init__(self, task: str, done: int) -> None:
        super().__init__()
        self.task = task
        self.done = done


class ProgressLog(Message):
    """A line for the log pane."""

    def __init__(self, task: str, line: str) -> None:
        super().__init__()
        self.task = task
        self.line = line


class TaskFinished(Message):
    """A long task ended: with a report, cancelled, or with an error."""

    def __init__(
        self,
        task: str,
        *,
        report: dict[str, Any] | None = None,
        error: BaseException | None = None,
        cancelled: bool = False,
    ) -> None:
        super().__init__()
        self.task = task
        self.report = report or {}
        self.error = error
        self.cancelled = cancelled

    @property
    def ok(self) -> bool:
        return self.error is None and not self.cancelled
