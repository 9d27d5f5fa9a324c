"""Stage 3 as a batch step (`pipeline.batchstep`), so it runs in process or on Ray actors.

pending = the QAs without an MCQ for the current prompt and model version (`resume.py`),
numbered in QA-id order; read = each QA with its caption (and the figure's bytes for a
vision model); process = the model calls and checks of each QA (`MCQGenerator`), on a worker
that loaded the client once; write = MCQ and quarantine rows (`insert_new`: idempotent).

The answer position is not a worker's choice: it comes from the balancer, which must see
accepted MCQs in the same order whatever the engine. So `write` keeps a reorder buffer:
results arriving out of order (Ray actors finish when they finish) wait until every QA
before them has arrived, and only then take positions and go to the store. A crash loses
the buffered results with the batches in flight, and the re-run's balancer starts from the
positions in the store: the same positions as an uninterrupted run.

Cancel: in process, the batch's remaining QAs are not started (calls in flight finish) and
what was done is written; on Ray the run stops after the next finished batch.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from microvqa_tui.common.captions import caption_texts
from microvqa_tui.common.funnel import FunnelRow
from microvqa_tui.config.mcq import MCQSettings
from microvqa_tui.engines.base import Engine
from microvqa_tui.models.client import TIMEOUT_HINT, LLMClient, Meter, NoModel, run_concurrently
from microvqa_tui.pipeline.batchstep import BatchStep, Pending, run_batch_step
from microvqa_tui.pipeline.stage3 import prompts
from microvqa_tui.pipeline.stage3.generate import (
    STAGE,
    MCQGenerator,
    MCQReport,
    Outcome,
    Tally,
    close_report,
    figure_images,
    generate_one,
    mcq_version,
    record_outcome,
    run_counts,
    select_qas,
    write_batch,
)
from microvqa_tui.pipeline.stage3.positions import PositionBalancer
from microvqa_tui.pipeline.stage3.resume import generation_row, pending_qas
from microvqa_tui.progress import CancelToken, ProgressReporter
from store import Store

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.config import Settings


@dataclass
class _QA:
    """One work item: a QA, its place in the run's order, its caption (and image)."""

    seq: int
    qa: dict[str, Any]
    caption: str
    image: bytes | None = None


Result = tuple[int, Outcome]  # (seq, what the model made of that QA)


class MCQStep(BatchStep[int, _QA, Result]):
    name = STAGE
    reads = ("qas", "captions", "figures", "mcqs", "quarantine")
    writes = ("mcqs", "quarantine")
    # `loaded`: the client (a worker loads its own); `run`: the driver's state of the run
    # (the QAs to do, the balancer, the reorder buffer, the tally), never shipped.
    worker_state = ("loaded", "run")

    def __init__(self, llm: LLMClient | None = None) -> None:
        self.loaded: dict[str, LLMClient] = {"llm": llm} if llm is not None else {}
        self.run: dict[str, Any] = {}
        self.cfg: MCQSettings | None = None
        self.model = ""

    def section(self, settings: Settings) -> MCQSettings:
        if self.cfg is None:
            self.cfg = settings.mcq
            self.template = prompts.load(prompts.GENERATE_TEMPLATE, self.cfg.prompt_dir)
        return self.cfg

    def _model_id(self, settings: Settings, needed: bool) -> str:
        """The client's id (a server client is made here; an in-process GGUF only named);
        "none" when there is nothing to generate (no model is resolved then)."""
        from microvqa_tui.models import registry

        if "llm" not in self.loaded:
            if not needed:
                return NoModel.model_id
            name, client = registry.client_id(self.section(settings).model_role, settings)
            if client is None:
                return name
            self.loaded["llm"] = client
        return self.loaded["llm"].model_id

    def pending(self, store: Any, settings: Settings) -> Pending[int]:
        cfg = self.section(settings)
        clock = time.perf_counter()
        qas, statuses, note = select_qas(store, cfg)
        self.model = self._model_id(settings, bool(qas))
        version = self.version = mcq_version(self.template, self.model, cfg)
        skipped: Counter[str] = Counter()
        todo, stale, history = pending_qas(store, cfg, qas, version, skipped)
        report = MCQReport(
            model=self.model,
            prompt_version=version,
            qa_source=statuses,
            note=note,
            eligible=len(qas),
            skipped_existing=skipped["existing"],
            skipped_quarantined=skipped["quarantined"],
        )
        attempts = FunnelRow(STAGE, "attempts", note="one row per model call; failed calls retried")
        balancer = PositionBalancer(cfg.n_choices, cfg.seed, history)
        tally = Tally(report, attempts, Counter(), balancer, stale, version, self.model, cfg)
        self.run = {"todo": todo, "qas": qas, "tally": tally, "meter": Meter(), "clock": clock}
        self.run.update(buffer={}, next=0)
        versions = {"llm": self.model, "prompt_version": version}
        return Pending(
            list(range(len(todo))),
            versions,
            description="Stage 3 · MCQ generation",
            messages=[note] if note else [],
        )

    def read(self, store: Any, keys: Sequence[int]) -> list[_QA]:
        qas = [self.run["todo"][seq] for seq in keys]
        captions = caption_texts(store, qas, key="qa_id")
        assert self.cfg is not None
        images = figure_images(store, qas) if self.cfg.model_role == "vlm" else {}
        return [
            _QA(seq, qa, captions.get(qa["qa_id"], ""), images.get(qa["figure_id"]))
            for seq, qa in zip(keys, qas, strict=True)
        ]

    def load(self, settings: Settings) -> None:
        from microvqa_tui.errors import PipelineError
        from microvqa_tui.models import registry

        cfg = self.section(settings)
        if "llm" not in self.loaded:
            self.loaded["llm"] = registry.get(cfg.model_role, settings)
        if self.loaded["llm"].model_id != self.model:
            found = self.loaded["llm"].model_id
            raise PipelineError(f"mcq worker loaded model {found}, not {self.model}")

    def process(self, items: Sequence[_QA]) -> list[Result]:
        """The batch's QAs go to the client together (a server's in-flight limit); at a
        cancel the QAs not started are left out: the results are the batch's first ones."""
        assert self.cfg is not None
        llm = self.loaded["llm"]
        generator = MCQGenerator(llm, self.cfg, self.template)
        captions = {item.qa["qa_id"]: item.caption for item in items}
        images = {item.qa["figure_id"]: item.image for item in items if item.image}
        one = partial(generate_one, generator, captions, images)
        qas = [item.qa for item in items]
        outcomes = dict(run_concurrently(one, qas, llm.in_flight, cancel=self.cancel))
        done = []
        for index, item in enumerate(items):
            if index not in outcomes:
                break
            done.append((item.seq, outcomes[index]))
        return done

    def done_items(self, results: list[Result], size: int) -> int:
        return len(results)

    def write(self, store: Any, results: Sequence[Result]) -> dict[str, int]:
        """Results into the reorder buffer; those next in QA order take their positions
        and are written (quarantine rows, MCQs, superseded MCQs marked)."""
        run, tally = self.run, self.run["tally"]
        run["buffer"].update(results)
        mcq_rows: list[dict] = []
        quarantine_rows: list[dict] = []
        superseded: list[str] = []
        while run["next"] in run["buffer"]:
            outcome = run["buffer"].pop(run["next"])
            qa = run["todo"][run["next"]]
            run["next"] += 1
            rows = (mcq_rows, quarantine_rows, superseded)
            line = record_outcome(tally, qa, outcome, self, rows)
            if line and self.progress is not None:
                self.progress.log(line)
            run["meter"].merge(outcome.meter)
        write_batch(store, mcq_rows, quarantine_rows, superseded, self.version)
        tally.report.generated += len(mcq_rows)
        return {"generated": len(mcq_rows)}

    def close(self, store: Any) -> None:
        """The totals and the funnel (from the store, so a resumed run counts every QA)."""
        run = self.run
        tally = run["tally"]
        close_report(tally, run["meter"], run["clock"])
        report = tally.report
        funnel = [generation_row(store, run["qas"], self.version, report.qa_source)]
        report.funnel = [row.as_dict() for row in [*funnel, tally.attempt_row]]

    def report(
        self, run_id: str, pending: Pending[int], counts: Counter[str], seconds: float
    ) -> MCQReport:
        report = self.run["tally"].report
        report.run_id = run_id
        return report

    def run_counts(self, report: MCQReport) -> dict[str, Any]:
        return run_counts(report)

    def summary(self, report: MCQReport) -> str:
        if not report.timed_out:
            return ""
        return (
            f"mcq: {report.generated} MCQs made; {report.timed_out} QAs' model calls timed "
            f"out — {TIMEOUT_HINT}"
        )


def run_mcq(
    store: Store,
    settings: Settings,
    *,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
    llm: LLMClient | None = None,
    engine: Engine | None = None,
) -> MCQReport:
    """Generate MCQs for the kept QAs that have none yet for the current prompt and model.

    `llm` is an in-process client to use (default: the registry's, loaded per worker);
    `engine` defaults to the one in `settings.engine`."""
    return run_batch_step(
        MCQStep(llm), store, settings, engine=engine, progress=progress, cancel=cancel
    )
