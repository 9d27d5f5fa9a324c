"""The shape of a whole-table step, and the runner that owns its skeleton.

Some steps cannot be cut into independent item batches (`batchstep.BatchStep`): the graph
trains one model on every QA at once, dedup compares every item of a kind with every other.
Such a step is a `TableStep`; it supplies the parts that differ and `run_table_step` owns
the rest — the run record, cancel (checked before the run and between parts), the time of
each part, the report handed to `Cancelled` and the closing log line:

    settle(store, settings) -> config                     read what the run depends on;
                                                          the config the run row records
    up_to_date(store) -> report | None                    a report when there is nothing to
                                                          do (no run row is written)
    start(run)                                            the run row exists (its id)
    parts() -> names                                      units of work, in order
    run_part(store, run, part)                            one unit: its writes, and what it
                                                          adds to the run (models, counts)

`progress` and `cancel` are set on the step before `settle`, for the step's own long work
(training epochs, k-NN blocks) to report to and check.
    report() -> report                                    the step's report (`to_dict()`)
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from microvqa_tui.common.runs import RunRecord, record_run, report_to_cancel
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter
from store import Store

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.config import Settings

Rep = TypeVar("Rep")  # the step's report


class TableStep(ABC, Generic[Rep]):
    """One pipeline step over whole tables: settle, then its parts one after another."""

    name: ClassVar[str]
    reads: ClassVar[tuple[str, ...]] = ()  # tables
    writes: ClassVar[tuple[str, ...]] = ()
    run_id: str = ""
    progress: ProgressReporter
    cancel: CancelToken

    @abstractmethod
    def settle(self, store: Store, settings: Settings) -> dict[str, Any]:
        """Settle what the run depends on (settings, inputs, models); the run row's config."""

    def up_to_date(self, store: Store) -> Rep | None:
        """The report of a run with nothing to do (default: there is always something)."""
        return None

    def start(self, run: RunRecord) -> None:
        """The run row is written: remember its id (for the rows the step stamps)."""
        self.run_id = run.run_id

    @abstractmethod
    def parts(self) -> Sequence[str]:
        """The units of work in order; cancel is checked between them."""

    @abstractmethod
    def run_part(self, store: Store, run: RunRecord, part: str) -> None:
        """Do one unit: write its results, add its models, counts and notes to `run`."""

    @abstractmethod
    def report(self) -> Rep:
        """The report of what the parts done so far did."""

    def summary(self, report: Rep) -> str:
        """A line for the progress log once the run ends ("" = none)."""
        return ""


def run_table_step(
    step: TableStep[Rep],
    store: Store,
    settings: Settings,
    *,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
) -> Rep:
    """Run `step`: settle, stop when up to date, else its parts under one run record.

    A cancel between parts records the run as cancelled and raises `Cancelled` carrying
    the report of the parts finished; a cancel before the run starts writes nothing."""
    step.progress = progress = progress or NullProgress()
    step.cancel = cancel = cancel or CancelToken()
    config = step.settle(store, settings)
    cancel.check()
    done = step.up_to_date(store)
    if done is not None:
        return done
    with record_run(store, step.name, config=config) as run:
        step.start(run)
        try:
            for part in step.parts():
                cancel.check()
                clock = time.perf_counter()
                step.run_part(store, run, part)
                run.timings[f"{part}_s"] = round(time.perf_counter() - clock, 3)
        finally:
            report = step.report()
            report_to_cancel(report)
    if line := step.summary(report):
        progress.log(line)
    return report
