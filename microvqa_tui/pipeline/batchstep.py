"""The shape of a batch step, and the driver loop every engine shares.

A step is the part that differs; `run_batch_step` owns the rest (run record, batching,
cancel, progress, counts). The split follows where each part may run:

    driver (has the store)                    worker (may be a remote Ray actor)
    ----------------------                    ----------------------------------
    pending(store, settings) -> Pending       load(settings)            once per worker
    read(store, keys) -> items                process(items) -> results  pure: no store
    write(store, results) -> counts
    finish(store)                 after the last batch (not after a cancel)
    close(store)                  however the run stops
    report(run_id, pending, counts) -> report

`pending` lists the keys of the work not yet done for the current version (e.g. the model
id), read from the store, so a re-run resumes after a crash. `read` turns a batch of keys
into self-contained items (inputs the worker needs, e.g. text or image bytes: the driver
ships them). `write` is idempotent (an upsert keyed by item), so a batch written twice is
written once. An engine (`microvqa_tui.engines`) moves item batches to `process` and
results back to `write` as each batch finishes: a killed driver loses only batches in flight.

A step object is pickled to the workers with what `pending` settled (e.g. model ids), but
without its loaded models: the dicts named in `worker_state` arrive empty. The runner's
`progress` and `cancel` stay on the driver too: a worker sees None. So `process` may stop
early when `self.cancel` is set (only in process, on the local engine) and return the
results of the items done so far; `done_items` then says how many items a batch finished.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from microvqa_tui.common.runs import record_run, report_to_cancel
from microvqa_tui.engines import engine_for
from microvqa_tui.engines.base import Engine
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.config import Settings

K = TypeVar("K")  # a work key (an id, or a tuple naming the item)
I = TypeVar("I")  # noqa: E741  an item: what `process` needs, self-contained
R = TypeVar("R")  # a result: what `write` stores


@dataclass
class Pending(Generic[K]):
    """What a run has to do: the keys not done yet, and what decided "done"."""

    keys: list[K]
    versions: dict[str, str] = field(default_factory=dict)  # e.g. role -> model id
    counts: dict[str, Any] = field(default_factory=dict)  # e.g. items, already done
    unavailable: dict[str, str] = field(default_factory=dict)  # skipped part -> why
    description: str = ""  # the progress bar's label
    messages: list[str] = field(default_factory=list)  # logged, and kept in the run row


class BatchStep(ABC, Generic[K, I, R]):
    """One pipeline step as pending work, a pure `process` and an idempotent `write`."""

    name: ClassVar[str]
    reads: ClassVar[tuple[str, ...]] = ()  # tables
    writes: ClassVar[tuple[str, ...]] = ()
    # Dicts filled by `load` (e.g. role -> model): they arrive empty on a worker, which
    # fills them with its own `load`.
    worker_state: ClassVar[tuple[str, ...]] = ()
    run_id: str = ""  # set by the runner before `pending` (for rows `write` stamps)
    # Set by the runner on the driver, never pickled: `write` and `finish` may log lines;
    # an in-process `process` may stop at `cancel` (None on a worker).
    progress: ProgressReporter | None = None
    cancel: CancelToken | None = None

    # -------------------------------------------------------------- driver side
    def section(self, settings: Settings) -> Any:
        """The step's settings section (`settings.<step>`), with a `batch_size`; what
        `config` and `batch_size` read unless a step overrides them."""
        raise NotImplementedError(f"{type(self).__name__} names no settings section")

    def config(self, settings: Settings) -> dict[str, Any]:
        """The step's settings section as recorded in the run row."""
        return self.section(settings).model_dump(mode="json")

    def batch_size(self, settings: Settings) -> int:
        return self.section(settings).batch_size

    @abstractmethod
    def pending(self, store: Any, settings: Settings) -> Pending[K]: ...

    @abstractmethod
    def read(self, store: Any, keys: Sequence[K]) -> list[I]:
        """The items of `keys` that still exist, with the inputs `process` needs."""

    @abstractmethod
    def write(self, store: Any, results: Sequence[R]) -> dict[str, int]:
        """Store `results` (idempotently); counts to add to the run's totals."""

    @abstractmethod
    def report(self, run_id: str, pending: Pending[K], counts: Counter[str], seconds: float) -> Any:
        """The step's report (has `to_dict()`), from what was pending and the totals."""

    def run_counts(self, report: Any) -> dict[str, Any]:
        """What the run row records as counts (default: the report less id and time)."""
        out = report.to_dict()
        return {k: v for k, v in out.items() if k not in ("run_id", "seconds")}

    def run_timings(self, report: Any) -> dict[str, float]:
        """Timings of the step's own to record beside the runner's rate (default: none)."""
        return {}

    def summary(self, report: Any) -> str:
        """A line for the progress log once the run ends ("" = none)."""
        return ""

    def done_items(self, results: list[Any], size: int) -> int:
        """Items of a batch of `size` that `results` finished (default: all; a step whose
        `process` stops at a cancel says how many it did)."""
        return size

    def finish(self, store: Any) -> None:
        """Driver work once every batch is written (not after a cancel or a failure)."""

    def close(self, store: Any) -> None:
        """Driver work once the run stops, however it stops, before `report`."""

    # -------------------------------------------------------------- worker side
    @abstractmethod
    def load(self, settings: Settings) -> None:
        """Load the models `process` needs (once per worker); idempotent."""

    @abstractmethod
    def process(self, items: Sequence[I]) -> list[R]:
        """Results of a batch of items. No store access: it may run on a remote actor."""

    def __getstate__(self) -> dict[str, Any]:
        driver = (*self.worker_state, "progress", "cancel")
        return {k: v for k, v in self.__dict__.items() if k not in driver}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.update({name: {} for name in self.worker_state})


def run_batch_step(
    step: BatchStep[Any, Any, Any],
    store: Any,
    settings: Settings,
    *,
    engine: Engine | None = None,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
) -> Any:
    """Run `step` on `engine`: pending keys in batches, results written as batches finish.

    Cancel stops feeding new batches; batches already finished are written, then the run is
    recorded as cancelled and `Cancelled` is raised. `engine` defaults to `settings.engine`'s.
    """
    engine = engine or engine_for(settings)
    progress = progress or NullProgress()
    cancel = cancel or CancelToken()
    totals: Counter[str] = Counter()
    config = {**step.config(settings), "engine": engine.name}
    with record_run(store, step.name, config=config) as run:
        step.run_id, step.progress, step.cancel = run.run_id, progress, cancel
        pending = step.pending(store, settings)
        run.models.update(pending.versions)
        for part, why in pending.unavailable.items():
            progress.log(f"{step.name}: {part} unavailable — {why}")
        for line in pending.messages:
            progress.log(line)
        run.message = "; ".join(pending.messages)
        progress.start(pending.description or step.name, len(pending.keys))
        clock = time.perf_counter()
        size = engine.batch_size or step.batch_size(settings)
        try:
            batches = _item_batches(step, store, pending.keys, size, cancel)
            for done in engine.run(step, settings, batches, cancel) if pending.keys else ():
                totals.update(step.write(store, done.results))
                finished = step.done_items(done.results, done.size)
                totals["processed"] += finished
                progress.advance(finished)
            cancel.check()
            step.finish(store)
        finally:
            seconds = time.perf_counter() - clock
            step.close(store)
            report = step.report(run.run_id, pending, totals, seconds)
            run.counts = step.run_counts(report)
            run.timings.update(_rates(totals["processed"], seconds))
            run.timings.update(step.run_timings(report))
            report_to_cancel(report)
    if line := step.summary(report):
        progress.log(line)
    return report


def _item_batches(
    step: BatchStep[Any, Any, Any],
    store: Any,
    keys: Sequence[Any],
    size: int,
    cancel: CancelToken,
) -> Iterator[list[Any]]:
    """Items read batch by batch (the driver ships them), until cancelled."""
    for start in range(0, len(keys), size):
        if cancel.cancelled:
            return
        items = step.read(store, keys[start : start + size])
        if items:
            yield items


def _rates(items: int, seconds: float) -> dict[str, float]:
    rate = items / seconds if seconds > 0 else 0.0
    return {"process_s": round(seconds, 3), "items_per_s": round(rate, 2)}
