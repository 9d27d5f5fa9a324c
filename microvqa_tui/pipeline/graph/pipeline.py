"""The whole HiCQA-Graph step on plain arrays: corrupt, build, label, train, score, filter.

`run.py` wraps this with the store; benchmarks and tests call it directly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from microvqa_tui.config.graph import GraphSettings
from microvqa_tui.pipeline.graph.build import HiCQAGraph, build_graph
from microvqa_tui.pipeline.graph.corrupt import SyntheticNegatives, corrupt
from microvqa_tui.pipeline.graph.filter import FilterResult, filter_scores, reference_values, select
from microvqa_tui.pipeline.graph.inputs import GraphInputs
from microvqa_tui.pipeline.graph.knn import resolve_device
from microvqa_tui.pipeline.graph.train import TrainResult, evaluate, occlusion, train
from microvqa_tui.pipeline.graph.weak_labels import (
    LFConfig,
    TrainTargets,
    WeakLabels,
    make_targets,
    weak_labels,
)
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter


@dataclass
class GraphOutcome:
    graph: HiCQAGraph
    negatives: SyntheticNegatives
    weak: WeakLabels
    targets: TrainTargets
    result: TrainResult
    scores: np.ndarray  # (n_qa,) consistency in [0, 1]
    filtered: FilterResult
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def metrics(self) -> dict:
        return self.result.metrics


def human_array(qa_ids: list[str], human_labels: dict[str, int] | None) -> np.ndarray | None:
    """`{qa_id: 0/1}` as an array over `qa_ids` (-1 = no decision); None when there are none."""
    if not human_labels:
        return None
    position = {q: i for i, q in enumerate(qa_ids)}
    out = np.full(len(qa_ids), -1, np.int8)
    for qa_id, label in human_labels.items():
        i = position.get(qa_id)
        if i is not None:
            out[i] = 1 if int(label) else 0
    return out if (out >= 0).any() else None


class _Laps:
    """Seconds per phase, checking for cancellation between phases."""

    def __init__(self, cancel: CancelToken | None) -> None:
        self.timings: dict[str, float] = {}
        self.cancel = cancel
        self.clock = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self.clock, 3)
        self.clock = now
        if self.cancel is not None:
            self.cancel.check()


def fit_and_filter(
    inputs: GraphInputs,
    settings: GraphSettings | None = None,
    *,
    human: np.ndarray | None = None,
    device: str | torch.device | None = None,
    lf_config: LFConfig | None = None,
    explain: bool = True,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
) -> GraphOutcome:
    """Score every QA of `inputs` and decide kept / held out (with reasons).

    `human`: per QA -1 (no decision), 0 (rejected) or 1 (accepted), see `human_array`.
    """
    settings = settings or GraphSettings()
    progress = progress or NullProgress()
    dev = resolve_device(device if device is not None else settings.device)
    if inputs.n_qa == 0:
        raise ValueError("no QAs to score")
    lap = _Laps(cancel)
    progress.start("graph: building", None)
    negatives, graph = _build(inputs, settings, dev)
    lap("build_s")
    lap.timings.update(graph.timings)
    weak = weak_labels(inputs.signals, lf_config)
    targets = make_targets(
        weak,
        len(negatives),
        human=human,
        soft=settings.soft_labels,
        val_fraction=settings.val_fraction,
        human_weight=settings.human_weight,
        label_smoothing=settings.label_smoothing,
        seed=settings.seed,
    )
    lap("labels_s")
    result = train(graph, targets, settings, device=dev, progress=progress, cancel=cancel)
    lap("train_s")
    progress.start("graph: scoring", None)
    all_scores = result.scores
    if all_scores is None:
        all_scores = evaluate(result.model, result.inputs).scores
    scores = all_scores[: graph.n_real]
    lap("score_s")
    filtered = _filter(result, inputs, graph, settings, all_scores, human=human, explain=explain)
    lap("filter_s")
    result.metrics.update(
        {
            "kept": filtered.n_kept,
            "held_out": filtered.n_held_out,
            "threshold": round(filtered.threshold, 5),
            **{f"weak_{k}": v for k, v in weak.summary().items()},
            **negatives.counts(),
            **graph.summary(),
        }
    )
    return GraphOutcome(graph, negatives, weak, targets, result, scores, filtered, lap.timings)


def _build(
    inputs: GraphInputs, settings: GraphSettings, dev: torch.device
) -> tuple[SyntheticNegatives, HiCQAGraph]:
    """The synthetic negatives and the graph of the real QAs plus them."""
    negatives = corrupt(
        inputs,
        settings.synthetic_negative_fraction,
        seed=settings.seed,
        wrong_figure_share=settings.wrong_figure_share,
        duplicate_share=settings.duplicate_share,
        wrong_pair_share=settings.wrong_pair_share,
    )
    graph = build_graph(
        inputs,
        knn_k=settings.knn_k,
        negatives=negatives,
        device=dev,
        knn_memory_mb=settings.knn_memory_mb,
        knn_fast=settings.knn_tf32 and dev.type == "cuda",
        embedding_dims=settings.embedding_dims,
    )
    return negatives, graph


def _filter(
    result: TrainResult,
    inputs: GraphInputs,
    graph: HiCQAGraph,
    settings: GraphSettings,
    all_scores: np.ndarray,
    *,
    human: np.ndarray | None,
    explain: bool,
) -> FilterResult:
    """Kept / held out with reasons; `explain` adds the occlusion effects of held-out QAs."""
    scores = all_scores[: graph.n_real]
    keep, _ = select(scores, keep_fraction=settings.keep_fraction, threshold=settings.threshold)
    effects = rows = reference = None
    if explain:
        reference = reference_values(inputs.signals, keep)
        rows = np.flatnonzero(~keep)
        effects = occlusion(result, graph, rows, reference, base_scores=all_scores)
    return filter_scores(
        scores,
        inputs.signals,
        keep_fraction=settings.keep_fraction,
        threshold=settings.threshold,
        effects=effects,
        effect_rows=rows,
        reference=reference,
        knn_index=graph.knn.get("qa", (None, None))[0],
        human=human,
        qa_figure=inputs.qa_figure,
    )
