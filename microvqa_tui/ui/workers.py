"""How the screens run core work off the UI thread.

- `run_blocking(node, fn, on_success=...)` runs `fn` in a Textual thread worker and hands its
  result to `on_success` on the UI thread. Any exception goes to the app's one error path
  (`MicroVQAApp.show_error`): a notification, never a traceback on screen. A result of a
  worker that was cancelled (an `exclusive` newer one replaced it) is dropped.
- `UIProgress` is the pipeline's `ProgressReporter` for the TUI: it posts `ProgressStarted`,
  `ProgressAdvanced` (throttled, so a per-item `advance` does not flood the message queue) and
  `ProgressLog` messages to a widget. Cancellation uses the core's `CancelToken`.
"""

from __future__ import annotations

import contextlib
import faulthandler
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from textual.dom import DOMNode
from textual.message_pump import MessagePump
from textual.worker import Worker, get_current_worker

from microvqa_tui.ui.messages import ProgressAdvanced, ProgressLog, ProgressStarted

T = TypeVar("T")


def run_blocking(
    node: DOMNode,
    fn: Callable[[], T],
    *,
    on_success: Callable[[T], Any] | None = None,
    on_error: Callable[[BaseException], Any] | None = None,
    group: str = "default",
    exclusive: bool = False,
    name: str = "",
    context: str = "",
) -> Worker[T | None]:
    """Run `fn` in a thread worker; deliver its result or error on the UI thread."""
    app = node.app

    def deliver(callback: Callable[..., Any], value: Any) -> None:
        worker = get_current_worker()
        if worker.is_cancelled:
            return
        try:
            app.call_from_thread(callback, value)
        except RuntimeError:  # the app is shutting down
            return
        except Exception as exc:  # a bug in a callback: report it, never crash the app
            with contextlib.suppress(RuntimeError):
                app.call_from_thread(_report, app, exc, context=context)

    def body() -> T | None:
        try:
            result = fn()
        except Exception as exc:
            handler = on_error or partial(_report, app, context=context)
            deliver(handler, exc)
            return None
        if on_success is not None:
            deliver(on_success, result)
        return result

    return node.run_worker(
        body,
        name=name or getattr(fn, "__name__", "work"),
        group=group,
        exclusive=exclusive,
        thread=True,
        exit_on_error=False,
    )


class UIProgress:
    """A ProgressReporter that posts messages to `target` (a screen or widget), from any thread."""

    def __init__(
        self,
        target: MessagePump,
        task: str,
        *,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.task = task
        self.interval = interval
        self.clock = clock
        self.done = 0
        self._last = 0.0
        self._lock = threading.Lock()

    def start(self, description: str, total: int | None) -> None:
        with self._lock:
            self.done = 0
            self._last = self.clock()
        self.target.post_message(ProgressStarted(self.task, description, total))

    def advance(self, amount: int = 1) -> None:
        with self._lock:
            self.done += amount
            now = self.clock()
            due = now - self._last >= self.interval
            if due:
                self._last = now
            done = self.done
        if due:
            self.target.post_message(ProgressAdvanced(self.task, done))

    def log(self, message: str) -> None:
        self.target.post_message(ProgressLog(self.task, message))

    def flush(self) -> None:
        """Post the final count (the last advances may have been throttled)."""
        self.target.post_message(ProgressAdvanced(self.task, self.done))


class SerialRunner:
    """Runs submitted functions one after the other, in submission order, in a thread worker.

    For the review screens: an accept followed by "next" must see the accept, and undo must
    follow the decision it reverts, however fast the keys come. Results and errors are
    delivered on the UI thread like `run_blocking`'s.
    """

    def __init__(self, node: DOMNode, group: str) -> None:
        self.node = node
        self.group = group
        self._queue: deque[tuple[Callable[[], Any], Callable[[Any], Any] | None, str]] = deque()
        self._lock = threading.Lock()
        self._draining = False

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._draining

    def submit(
        self, fn: Callable[[], T], on_success: Callable[[T], Any] | None = None, context: str = ""
    ) -> None:
        with self._lock:
            self._queue.append((fn, on_success, context))
            if self._draining:
                return
            self._draining = True
        self.node.run_worker(
            self._drain,
            name=f"{self.group}-queue",
            group=self.group,
            thread=True,
            exit_on_error=False,
        )

    def _drain(self) -> None:
        app = self.node.app
        while True:
            with self._lock:
                if not self._queue:
                    self._draining = False
                    return
                fn, on_success, context = self._queue.popleft()
            try:
                result = fn()
            except Exception as exc:
                callback: Callable[[Any], Any] | None = partial(_report, app, context=context)
                value: Any = exc
            else:
                callback, value = on_success, result
            if callback is None:
                continue
            try:
                app.call_from_thread(callback, value)
            except RuntimeError:  # the app is shutting down
                with self._lock:
                    self._queue.clear()
                    self._draining = False
                return
            except Exception as exc:  # a bug in a callback: report it, keep draining
                with contextlib.suppress(RuntimeError):
                    app.call_from_thread(_report, app, exc, context=context)


def fault_handler_on_the_terminal() -> None:
    """Enable `faulthandler` on the real stderr unless it is on already.

    While the app runs, Textual swaps `sys.stderr` for a capture without a file descriptor,
    and a library that then enables `faulthandler` on `sys.stderr` raises (`ray.init` does:
    "file.fileno() is not a valid file descriptor"). Called before a run on Ray; a crash report
    belongs on the terminal anyway.
    """
    if faulthandler.is_enabled() or sys.__stderr__ is None:
        return
    with contextlib.suppress(RuntimeError, ValueError, OSError):
        faulthandler.enable(file=sys.__stderr__)


def _report(app: Any, error: BaseException, *, context: str = "") -> None:
    app.show_error(error, context=context)
