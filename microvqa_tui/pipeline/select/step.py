"""The selection step as a batch step (`pipeline.batchstep`): in process or on Ray actors.

pending = the managed MCQs not checked with the current selection version (`run.py`), in
MCQ-id order; read = each MCQ row with its caption; process = the checks of each item
(`Checker`: reasoning, shortcut, Bloom, difficulty), on a worker that loaded the client
once, with the calls it cost; write = the step's own columns of the checked rows (and the
wording of those a rewrite changed). Once every batch is written, the policy keeps or
holds out the surviving items of this version (`finish`), on the driver: it needs them all.

Each item's checks depend on that item alone (seeds are per item), so results may arrive in
any order. Cancel: in process, the batch stops before its next item and what was checked is
written; on Ray the run stops after the next finished batch. The policy then does not run.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from microvqa_tui.common.captions import caption_texts
from microvqa_tui.config.select import SelectSettings
from microvqa_tui.engines.base import Engine
from microvqa_tui.models.client import TIMEOUT_HINT, LLMClient, Meter, NoModel
from microvqa_tui.pipeline.batchstep import BatchStep, Pending, run_batch_step
from microvqa_tui.pipeline.select.checker import Checker
from microvqa_tui.pipeline.select.difficulty import tier
from microvqa_tui.pipeline.select.run import (
    CHECK_COLUMNS,
    KEY,
    STEP,
    TEMPLATES,
    WORDING_COLUMNS,
    SelectReport,
    apply_and_write_policy,
    fill_report,
    managed_rows,
    params_of,
    select_version,
)
from microvqa_tui.pipeline.stage3 import prompts
from microvqa_tui.progress import CancelToken, ProgressReporter
from microvqa_tui.vocabulary import STATUS_KEPT
from store import Store

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.config import Settings

Item = tuple[dict[str, Any], str]  # (the MCQ row, its caption)
Result = dict[str, Any]  # the checked row, whether its wording changed, the calls it cost


class SelectStep(BatchStep[str, Item, Result]):
    name = STEP
    reads = ("mcqs", "captions", "qas")
    writes = ("mcqs",)
    # `loaded`: the client (a worker loads its own); `run`: the driver's state of the run
    worker_state = ("loaded", "run")

    def __init__(self, llm: LLMClient | None = None) -> None:
        self.loaded: dict[str, LLMClient] = {"llm": llm} if llm is not None else {}
        self.run: dict[str, Any] = {}
        self.cfg: SelectSettings | None = None
        self.model = self.version = ""

    def section(self, settings: Settings) -> SelectSettings:
        if self.cfg is None:
            cfg = self.cfg = settings.select
            self.templates = {n: prompts.load(f, cfg.prompt_dir) for n, f in TEMPLATES.items()}
            needs = (cfg.reasoning_checks and cfg.regenerate_cot) or cfg.shortcut_removal
            self.needs_model = needs or (cfg.bloom and cfg.bloom_use_llm) or cfg.difficulty
        return self.cfg

    def _model_id(self, settings: Settings, rows: bool) -> str:
        """The client's id without loading an in-process model; "none" when no check needs
        a model or there is nothing to check."""
        from microvqa_tui.models import registry

        if "llm" not in self.loaded:
            if not (self.needs_model and rows):
                self.loaded["llm"] = NoModel()
            else:
                name, client = registry.client_id("llm", settings)
                if client is None:
                    return name
                self.loaded["llm"] = client
        return self.loaded["llm"].model_id

    def pending(self, store: Any, settings: Settings) -> Pending[str]:
        cfg = self.section(settings)
        clock = time.perf_counter()
        rows = managed_rows(store, cfg.include_imported)
        self.model = self._model_id(settings, bool(rows))
        version = self.version = select_version(cfg, self.model, self.templates)
        report = SelectReport(managed=len(rows), model=self.model, version=version)
        todo = [r for r in rows if r["selection_version"] != version]
        report.already_checked = len(rows) - len(todo)
        if cfg.limit is not None:
            report.waiting = max(0, len(todo) - cfg.limit)
            todo = todo[: cfg.limit]
        self.run = {"rows": {r["mcq_id"]: r for r in todo}, "report": report}
        self.run.update(meter=Meter(), clock=clock)
        versions = {"llm": self.model, "select_version": version}
        return Pending([r["mcq_id"] for r in todo], versions, description="Selection · checks")

    def read(self, store: Any, keys: Sequence[str]) -> list[Item]:
        rows = [self.run["rows"][k] for k in keys]
        captions = caption_texts(store, rows, key="mcq_id")
        return [(row, captions.get(row["mcq_id"], "")) for row in rows]

    def load(self, settings: Settings) -> None:
        from microvqa_tui.errors import PipelineError
        from microvqa_tui.models import registry

        self.section(settings)
        if "llm" not in self.loaded:
            none = self.model == NoModel.model_id  # no check needs a model
            self.loaded["llm"] = NoModel() if none else registry.get_llm(settings)
        if self.loaded["llm"].model_id != self.model:
            found = self.loaded["llm"].model_id
            raise PipelineError(f"select worker loaded model {found}, not {self.model}")

    def process(self, items: Sequence[Item]) -> list[Result]:
        """Each item checked in turn; at a cancel the items not started are left out."""
        assert self.cfg is not None
        llm = self.loaded["llm"]
        checker = Checker(llm, self.cfg, self.templates, self.version)
        out = []
        for row, caption in items:
            if self.cancel is not None and self.cancel.cancelled:
                break
            start, wording = llm.meter.copy(), [row[c] for c in WORDING_COLUMNS]
            result = checker.check(row, caption)
            meter = llm.meter.since(start)
            if meter.timed_out_calls:  # a verdict from a cut-short call: check it next run
                out.append({"timed_out": True, "mcq_id": row["mcq_id"], "meter": meter})
                continue
            params = params_of(row)
            params[KEY] = result
            row["params_json"] = json.dumps(params, ensure_ascii=False)
            row["selection_version"] = self.version
            row["difficulty_tier"] = tier(row.get("pass_rate"), self.cfg)
            reworded = [row[c] for c in WORDING_COLUMNS] != wording
            out.append({"row": row, "reworded": reworded, "meter": meter})
        return out

    def done_items(self, results: list[Result], size: int) -> int:
        return len(results)

    def write(self, store: Any, results: Sequence[Result]) -> dict[str, int]:
        for result in results:
            if result.get("timed_out"):  # not written: it stays unchecked for the next run
                self.run["meter"].merge(result["meter"])
                self.run["report"].timed_out += 1
                if self.progress is not None:
                    self.progress.log(f"MCQ {result['mcq_id'][:8]}: a model call timed out")
        results = [r for r in results if not r.get("timed_out")]
        rows = [{**r["row"], "run_id": self.run_id} for r in results]
        store.update_columns("mcqs", rows, CHECK_COLUMNS)
        reworded = [row for row, r in zip(rows, results, strict=True) if r["reworded"]]
        store.update_columns("mcqs", reworded, WORDING_COLUMNS)
        for row, result in zip(rows, results, strict=True):
            self.run["meter"].merge(result["meter"])
            if row["status"] != STATUS_KEPT and self.progress is not None:
                self.progress.log(f"MCQ {row['mcq_id'][:8]}: {row['status']} ({row['reason']})")
        self.run["report"].checked += len(rows)
        return {"checked": len(rows)}

    def finish(self, store: Any) -> None:
        """The policy over every surviving item of this version, and the report's totals."""
        assert self.cfg is not None
        if self.progress is not None:
            self.progress.start("Selection · policy", None)
        outcome = apply_and_write_policy(store, self.cfg, self.version, self.run_id)
        final = managed_rows(store, self.cfg.include_imported)
        fill_report(self.run["report"], final, self.version, outcome, self.cfg)

    def report(
        self, run_id: str, pending: Pending[str], counts: Counter[str], seconds: float
    ) -> SelectReport:
        report, meter = self.run["report"], self.run["meter"]
        report.run_id, report.llm = run_id, meter.as_dict()
        report.seconds = round(time.perf_counter() - self.run["clock"], 3)
        if report.seconds > 0:
            share = 1 - meter.model_seconds / report.seconds
            report.outside_model_share = round(max(0.0, share), 4)
        return report

    def run_counts(self, report: SelectReport) -> dict[str, Any]:
        names = ("run_id", "model", "version")
        return {k: v for k, v in report.to_dict().items() if k not in names}

    def summary(self, report: SelectReport) -> str:
        if not report.timed_out:
            return ""
        return f"select: {report.timed_out} MCQs left unchecked, a model call timed out — {TIMEOUT_HINT}"


def run_select(
    store: Store,
    settings: Settings,
    *,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
    llm: LLMClient | None = None,
    engine: Engine | None = None,
) -> SelectReport:
    """Check the MCQs not checked with the current settings, model and prompts, then apply
    the selection policy. `llm`: an in-process client (default: the registry's, loaded per
    worker); `engine` defaults to the one in `settings.engine`."""
    return run_batch_step(
        SelectStep(llm), store, settings, engine=engine, progress=progress, cancel=cancel
    )
