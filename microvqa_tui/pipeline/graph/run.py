"""The HiCQA-Graph step on a store: read QAs, signals and embeddings, score, write back.

    report = run_graph(store, settings, progress=progress, cancel=cancel)

Reads `qas` (every QA, whatever its status), `signals` (per QA, or per caption for pair-level
signals, which are then also given to the caption's QAs), every `emb_<space>` table (a space
named `<family>_image|_caption|_qa` belongs to that node type; another is matched by its
ids) and, unless `human_labels` is given, the human accept/reject decisions (QA decisions,
then the review of the QA's MCQs). Writes each QA's `status` (kept / held_out), `score` and
`reason` (and each unreviewed imported MCQ takes its QA's verdict, see `mcq_verdict`), the
graph's edges (`edges`, this run's id), the run record, and the model weights +
metrics under the run folder. Nothing is deleted.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from microvqa_tui.common.runs import RunRecord
from microvqa_tui.config.graph import GraphSettings
from microvqa_tui.errors import PipelineError
from microvqa_tui.pipeline.graph.inputs import GraphInputs, fingerprint
from microvqa_tui.pipeline.graph.mcq_verdict import apply_to_imported_mcqs
from microvqa_tui.pipeline.graph.reading import human_labels_from_store, read_inputs
from microvqa_tui.pipeline.graph.writing import write_edges, write_qas
from microvqa_tui.pipeline.tablestep import TableStep, run_table_step
from microvqa_tui.progress import CancelToken, ProgressReporter
from microvqa_tui.vocabulary import GRAPH_REASONS, STATUS_HELD_OUT, STATUS_KEPT
from store import Store

if TYPE_CHECKING:
    from microvqa_tui.config import Settings
    from microvqa_tui.pipeline.graph.pipeline import GraphOutcome

__all__ = ["GraphReport", "human_labels_from_store", "last_fingerprint", "read_inputs", "run_graph"]

STEP = "graph"


@dataclass
class GraphReport:
    run_id: str = ""
    qas: int = 0
    kept: int = 0
    held_out: int = 0
    threshold: float = 0.0
    human_labels: int = 0
    synthetic_negatives: int = 0
    imported_mcqs: dict[str, int] = field(default_factory=dict)  # their QA's verdict
    edges_written: int = 0
    signals: list[str] = field(default_factory=list)
    embedding_spaces: list[str] = field(default_factory=list)
    device: str = ""
    run_dir: str = ""
    up_to_date: bool = False  # nothing new since the last run: nothing retrained or written
    fingerprint: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def last_fingerprint(store: Store) -> str | None:
    """The input digest of the newest finished graph run, None when there is none."""
    runs = store.rows(
        "runs", f"step = '{STEP}' AND status = 'done'", columns=["started_at", "config_json"]
    )
    if not runs:
        return None
    newest = max(runs, key=lambda r: str(r["started_at"]))
    return json.loads(newest["config_json"] or "{}").get("inputs_fingerprint")


# ---------------------------------------------------------------------------- the step


@dataclass
class _Read:
    """What one run read: the inputs, what was found (spaces, signal models), the human
    decisions as an array, and the settings it runs with."""

    inputs: GraphInputs
    found: dict[str, Any]
    human: np.ndarray | None
    config: dict[str, Any]

    @property
    def n_human(self) -> int:
        return 0 if self.human is None else int((self.human >= 0).sum())


def _step_settings(
    settings: Settings, keep_fraction: float | None, seed: int | None
) -> tuple[GraphSettings, str]:
    """The graph settings with the call's overrides, and the device to run on."""
    gs = settings.graph
    overrides: dict[str, Any] = {}
    if keep_fraction is not None:
        overrides["keep_fraction"] = keep_fraction
    if seed is not None:
        overrides["seed"] = seed
    if overrides:
        gs = gs.model_copy(update=overrides)
    device = settings.models.device if gs.device == "auto" else gs.device
    return gs, device


def run_graph(
    store: Store,
    settings: Settings,
    *,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
    human_labels: dict[str, int] | None = None,
    keep_fraction: float | None = None,
    seed: int | None = None,
    force: bool = False,
) -> GraphReport:
    """Build, train, score and filter; write statuses, scores, reasons, edges and the run.

    When nothing the scores depend on changed since the last finished run (no new QA,
    signal, embedding, decision or setting; see `inputs.fingerprint`), nothing is retrained
    or written (`report.up_to_date`) unless `force`.

    `settings`: the tool's `Settings` (its `graph` section, and `models.device` when the
    graph's device is auto). `keep_fraction` / `seed` override the settings.
    `human_labels` (`{qa_id: 1 accept | 0 reject}`) replaces the decisions read from the store.
    A cancel leaves the QAs untouched.
    """
    step = GraphStep(human_labels, keep_fraction, seed, force)
    return run_table_step(step, store, settings, progress=progress, cancel=cancel)


class GraphStep(TableStep[GraphReport]):
    """The graph as a whole-table step: one part, `train` (fit on every QA, then write)."""

    name = STEP
    reads = ("qas", "signals", "decisions", "mcqs")  # and every emb_<space>
    writes = ("qas", "mcqs", "edges")

    def __init__(
        self,
        human_labels: dict[str, int] | None,
        keep_fraction: float | None,
        seed: int | None,
        force: bool,
    ) -> None:
        self.human_labels, self.force = human_labels, force
        self.overrides = (keep_fraction, seed)
        self.graph_report = GraphReport()

    def settle(self, store: Store, settings: Settings) -> dict[str, Any]:
        """Read every input, and the fingerprint that says whether anything changed."""
        from microvqa_tui.pipeline.graph.pipeline import human_array

        self.gs, device = _step_settings(settings, *self.overrides)
        report = self.graph_report
        clock = time.perf_counter()
        self.progress.start("graph: reading store", None)
        inputs, found = read_inputs(store)
        labels = self.human_labels
        human = human_array(
            inputs.qa_ids, human_labels_from_store(store) if labels is None else labels
        )
        report.timings["read_s"] = round(time.perf_counter() - clock, 3)
        # The reason codes are part of what a run writes: a store whose held-out reasons
        # predate them (free text) is not up to date, and the next run rewrites them.
        config = {**self.gs.model_dump(mode="json"), "device": device}
        self.read = _Read(inputs, found, human, {**config, "reason_codes": list(GRAPH_REASONS)})
        report.fingerprint = fingerprint(inputs, human, self.read.config)
        self.read.config["inputs_fingerprint"] = report.fingerprint
        return self.read.config

    def up_to_date(self, store: Store) -> GraphReport | None:
        """Same QAs, signals, embeddings, decisions and settings as the last run: its scores
        stand (a retrain would give the very same ones), so nothing is written."""
        report = self.graph_report
        if self.force or last_fingerprint(store) != report.fingerprint:
            return None
        report.up_to_date = True
        report.qas = self.read.inputs.n_qa
        report.kept = store.count("qas", f"status = '{STATUS_KEPT}'")
        report.held_out = store.count("qas", f"status = '{STATUS_HELD_OUT}'")
        report.human_labels = self.read.n_human
        return report

    def parts(self) -> tuple[str, ...]:
        return ("train",)

    def run_part(self, store: Store, run: RunRecord, part: str) -> None:
        self.graph_report.run_id = run.run_id
        found = self.read.found
        run.models = {
            "signals": found["signal_models"],
            "embedding_spaces": found["embedding_spaces"],
        }
        report, progress, cancel = self.graph_report, self.progress, self.cancel
        _train_and_write(store, run, self.gs, self.read, report, progress, cancel)

    def report(self) -> GraphReport:
        return self.graph_report


def _train_and_write(
    store: Store,
    run: RunRecord,
    gs: GraphSettings,
    read: _Read,
    report: GraphReport,
    progress: ProgressReporter,
    cancel: CancelToken | None,
) -> None:
    """Fit and filter, save the model under the run folder, write the QAs and edges, and
    fill `report` and the run record."""
    from microvqa_tui.pipeline.graph.pipeline import fit_and_filter
    from microvqa_tui.pipeline.graph.train import save_run

    inputs = read.inputs
    try:
        outcome = fit_and_filter(
            inputs,
            gs,
            human=read.human,
            device=read.config["device"],
            progress=progress,
            cancel=cancel,
        )
    except ValueError as exc:
        raise PipelineError(f"the graph cannot be trained: {exc}") from None
    report.timings.update(outcome.timings)

    run_dir = Path(gs.run_dir) if gs.run_dir else Path(store.path) / "graph_runs" / run.run_id
    save_run(run_dir, outcome.result, {"run_id": run.run_id, "timings": report.timings})

    clock = time.perf_counter()
    progress.start("graph: writing", None)
    write_qas(store, inputs, outcome.scores, outcome.filtered.keep, outcome.filtered.reasons)
    report.imported_mcqs = apply_to_imported_mcqs(store, run.run_id)
    if gs.write_edges:
        report.edges_written = write_edges(store, run.run_id, inputs, outcome)
    report.timings["write_s"] = round(time.perf_counter() - clock, 3)
    _fill_report(report, read, outcome, run_dir)
    _record(run, report, outcome)


def _fill_report(report: GraphReport, read: _Read, outcome: GraphOutcome, run_dir: Path) -> None:
    report.qas = read.inputs.n_qa
    report.kept = outcome.filtered.n_kept
    report.held_out = outcome.filtered.n_held_out
    report.threshold = round(outcome.filtered.threshold, 5)
    report.human_labels = read.n_human
    report.synthetic_negatives = len(outcome.negatives)
    report.signals = read.inputs.signals.present()
    report.embedding_spaces = read.found["embedding_spaces"]
    report.device = outcome.metrics.get("device", "")
    report.run_dir = str(run_dir)
    report.metrics = outcome.metrics


def _record(run: RunRecord, report: GraphReport, outcome: GraphOutcome) -> None:
    """The run record's counts, timings and message."""
    run.counts.update(
        {
            "qas": report.qas,
            "kept": report.kept,
            "held_out": report.held_out,
            "human_labels": report.human_labels,
            "synthetic_negatives": report.synthetic_negatives,
            "imported_mcqs": report.imported_mcqs,
            "edges": report.edges_written,
            "metrics": {
                k: v for k, v in outcome.metrics.items() if not k.startswith(("nodes_", "edges_"))
            },
        }
    )
    run.timings.update(report.timings)
    # A poor teacher (one-sided or too few weak labels) is said where the user looks, not
    # only in metrics.json: the scores are then mostly "real vs synthetic negative".
    warnings = "".join(f"; warning: {w}" for w in outcome.weak.warnings())
    run.message = (
        f"kept {report.kept}/{report.qas} QAs (score >= {report.threshold:.3f}); "
        f"weights and metrics in {report.run_dir}{warnings}"
    )
