"""The whole-table step runner: run record, cancel between parts, up-to-date runs."""

from __future__ import annotations

import pytest

from microvqa_tui.errors import Cancelled
from microvqa_tui.pipeline.tablestep import TableStep, run_table_step
from microvqa_tui.progress import CancelToken


class Counting(TableStep[dict]):
    """Writes one caption per part; cancels itself after `stop_after` parts."""

    name = "counting"

    def __init__(self, cancel: CancelToken, stop_after: int = 99, fresh: bool = False) -> None:
        self.cancel, self.stop_after, self.fresh, self.done = cancel, stop_after, fresh, []

    def settle(self, store, settings):
        return {"parts": 3}

    def up_to_date(self, store):
        return {"done": [], "up_to_date": True} if self.fresh else None

    def parts(self):
        return ["a", "b", "c"]

    def run_part(self, store, run, part):
        self.done.append(part)
        run.counts[part] = 1
        if len(self.done) == self.stop_after:
            self.cancel.cancel()

    def report(self):
        return {"done": list(self.done), "run_id": self.run_id}


def _runs(store):
    return store.rows("runs", "step = 'counting'", ["status", "counts_json", "timings_json"])


def test_every_part_runs_under_one_run_record(store, settings):
    report = run_table_step(Counting(CancelToken()), store, settings)
    assert report["done"] == ["a", "b", "c"] and report["run_id"]
    (run,) = _runs(store)
    assert run["status"] == "done" and '"c": 1' in run["counts_json"]
    assert all(f'"{p}_s"' in run["timings_json"] for p in "abc")


def test_a_cancel_stops_between_parts_and_keeps_what_was_done(store, settings):
    cancel = CancelToken()
    with pytest.raises(Cancelled) as stopped:
        run_table_step(Counting(cancel, stop_after=2), store, settings, cancel=cancel)
    assert stopped.value.report["done"] == ["a", "b"]
    assert [r["status"] for r in _runs(store)] == ["cancelled"]


def test_an_up_to_date_step_writes_no_run(store, settings):
    report = run_table_step(Counting(CancelToken(), fresh=True), store, settings)
    assert report["up_to_date"] and _runs(store) == []
