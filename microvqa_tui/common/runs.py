"""Run records: every step execution is written to the `runs` table with its config, models,
counts and timings, and its final status (done, failed, cancelled)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from microvqa_tui.errors import Cancelled
from microvqa_tui.vocabulary import RUN_CANCELLED, RUN_DONE, RUN_FAILED, RUN_RUNNING
from store import Store
from store.schema import utcnow


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
    store.upsert("runs", [{**base, "status": RUN_RUNNING}])
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
