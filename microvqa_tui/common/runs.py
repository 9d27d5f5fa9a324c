"""Run records: every step execution is written to the `runs` table with its config, models,
counts and timings, and its final status (done, failed, cancelled).

A run killed outright (SIGKILL, a crash, power loss) cannot write its status; the next run of
the same step marks it `interrupted`. A run holds a presence lock (`Store.presence`) while it
runs, which the kernel releases when its process dies, so a run still going in another
process is told apart from a dead one."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from microvqa_tui.errors import Cancelled
from microvqa_tui.vocabulary import (
    RUN_CANCELLED,
    RUN_DONE,
    RUN_FAILED,
    RUN_INTERRUPTED,
    RUN_RUNNING,
)
from store import Store
from store.queries import quote
from store.schema import utcnow

INTERRUPTED = "the process running this step ended without closing the run (killed or crashed)"


@dataclass
class RunRecord:
    run_id: str
    step: str
    config: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    message: str = ""

    def add_count(self, key: str, amount: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + amount


def report_to_cancel(report: Any) -> None:
    """Inside a `finally`: when a `Cancelled` is on its way out, it carries `report` (what
    was done before the cancel, for the TUI's cancelled line)."""
    stopped = sys.exc_info()[1]
    if isinstance(stopped, Cancelled):
        stopped.report = report  # type: ignore[attr-defined]


def new_run_id(step: str) -> str:
    return f"{step}-{utcnow().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


@contextmanager
def record_run(
    store: Store, step: str, *, config: dict[str, Any] | None = None
) -> Iterator[RunRecord]:
    """Write a `running` row, yield the record to fill, then close it with the outcome."""
    record = RunRecord(run_id=new_run_id(step), step=step, config=config or {})
    started_at = utcnow()
    base = {
        "run_id": record.run_id,
        "step": step,
        "started_at": started_at,
        "config_json": json.dumps(record.config, default=str),
    }
    mark_interrupted(store, step)
    with store.presence(record.run_id):
        store.upsert("runs", [{**base, "status": RUN_RUNNING}])
        yield from _run_body(store, record, base)


def _run_body(store: Store, record: RunRecord, base: dict[str, Any]) -> Iterator[RunRecord]:
    clock = time.perf_counter()
    status = RUN_DONE
    try:
        yield record
    except Cancelled as exc:
        status, record.message = RUN_CANCELLED, str(exc)
        raise
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM via `cli.stop_on_sigterm`
        status, record.message = RUN_CANCELLED, "interrupted"
        raise
    except BaseException as exc:
        status, record.message = RUN_FAILED, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        record.timings.setdefault("total_s", round(time.perf_counter() - clock, 3))
        store.upsert(
            "runs",
            [
                {
                    **base,
                    "status": status,
                    "finished_at": utcnow(),
                    "models_json": json.dumps(record.models, default=str),
                    "counts_json": json.dumps(record.counts, default=str),
                    "timings_json": json.dumps(record.timings),
                    "message": record.message,
                }
            ],
        )


def mark_interrupted(store: Store, step: str) -> list[str]:
    """Mark the runs of `step` left `running` by a dead process as `interrupted`; returns
    their ids. The update re-checks the status, so a run that closed meanwhile keeps its own."""
    rows = store.rows("runs", f"step = {quote(step)} AND status = '{RUN_RUNNING}'", ["run_id"])
    dead = [row["run_id"] for row in rows if not store.is_present(row["run_id"])]
    for run_id in dead:
        store.update_where(
            "runs",
            f"run_id = {quote(run_id)} AND status = '{RUN_RUNNING}'",
            {"status": RUN_INTERRUPTED, "message": INTERRUPTED},
        )
    return dead
