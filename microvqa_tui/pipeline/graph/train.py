"""Training and evaluation of the HiCQA GNN, full batch.

`train` fits on the training part of the targets with class-balanced, weighted BCE and stops
early on the held-out part; `evaluate` scores nodes and, given targets, reports loss, AUC and
accuracy. With a seed, CPU training is deterministic (same scores twice); on CUDA some
scatter kernels use atomics, so results may differ in the last digits.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from microvqa_tui.config.graph import GraphSettings
from microvqa_tui.pipeline.graph.build import HiCQAGraph
from microvqa_tui.pipeline.graph.model import (
    HiCQAGNN,
    ModelInputs,
    QASignalView,
    SignalDropout,
    model_inputs,
)
from microvqa_tui.pipeline.graph.weak_labels import TrainTargets
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter


def roc_auc(y: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count half); None when one class is absent."""
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), np.float64)
    sorted_scores = score[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@contextlib.contextmanager
def deterministic(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch; on CPU also insist on deterministic kernels (restored afterwards)."""
    torch.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(seed)
        yield
        return
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


@dataclass
class Evaluation:
    scores: np.ndarray  # consistency in [0, 1] of every QA node (real then synthetic)
    loss: float | None = None
    auc: float | None = None
    accuracy: float | None = None
    n: int = 0

    def metrics(self, prefix: str) -> dict[str, float | int | None]:
        return {
            f"{prefix}_loss": None if self.loss is None else round(self.loss, 5),
            f"{prefix}_auc": None if self.auc is None else round(self.auc, 5),
            f"{prefix}_accuracy": None if self.accuracy is None else round(self.accuracy, 5),
            f"{prefix}_n": self.n,
        }


@dataclass
class TrainResult:
    model: HiCQAGNN
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    inputs: ModelInputs | None = None  # the tensors on the training device, for reuse
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    scores: np.ndarray | None = None  # every QA node's score with the kept weights


def _weighted_bce(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    loss = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return (loss * w).sum() / w.sum().clamp(min=1e-12)


@torch.no_grad()
def evaluate(
    model: HiCQAGNN,
    inputs: ModelInputs,
    *,
    targets: TrainTargets | None = None,
    mask: np.ndarray | None = None,
    loss_only: bool = False,
    logits: torch.Tensor | None = None,
) -> Evaluation:
    """Scores of every QA node; with `targets`, loss/AUC/accuracy over the nodes in `mask`
    (default: the validation part); `loss_only` skips AUC and accuracy. `logits`: the
    model's output on `inputs` when already computed (no second forward pass)."""
    if logits is None:
        was_training = model.training
        model.eval()
        logits = model(inputs)
        if was_training:
            model.train()
    scores = torch.sigmoid(logits).float().cpu().numpy()
    result = Evaluation(scores=scores)
    if targets is None:
        return result
    rows = np.flatnonzero(targets.val if mask is None else mask)
    result.n = len(rows)
    if not len(rows):
        return result
    y = torch.from_numpy(targets.y[rows])
    w = torch.from_numpy(targets.weight[rows])
    result.loss = float(_weighted_bce(logits.cpu()[rows], y, w))
    if loss_only:
        return result
    hard = targets.y[rows] >= 0.5
    result.auc = roc_auc(hard, scores[rows])
    result.accuracy = float(((scores[rows] >= 0.5) == hard).mean())
    return result


def fit_wide(model: HiCQAGNN, x_qa: torch.Tensor, rows, y, w, l2: float = 1e-3) -> None:
    """Start the model's wide path as the logistic regression on the same targets and
    features (L-BFGS to convergence): the graph part, which starts at zero, then only has to
    learn what the neighbourhood adds, and early stopping keeps it out where it adds
    nothing."""
    if model.wide is None:
        return
    a, b = model.wide_cols
    x = x_qa[rows, a:b]
    opt = torch.optim.LBFGS(model.wide.parameters(), max_iter=100)

    def closure():
        opt.zero_grad()
        loss = _weighted_bce(model.wide(x).squeeze(-1), y, w)
        loss = loss + l2 * model.wide.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)


@dataclass
class _Rows:
    """The labelled training rows with their targets and weights, on the device."""

    rows: torch.Tensor
    y: torch.Tensor
    w: torch.Tensor


def train(
    graph: HiCQAGraph,
    targets: TrainTargets,
    settings: GraphSettings | None = None,
    *,
    device: torch.device | str = "cpu",
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
) -> TrainResult:
    """Fit a fresh model; keep the weights of the epoch with the best validation loss."""
    settings = settings or GraphSettings()
    progress = progress or NullProgress()
    device = torch.device(device)
    labelled = targets.weight > 0
    if not (labelled & targets.train).any():
        raise ValueError("no labelled QA to train on")
    clock = time.perf_counter()
    with deterministic(settings.seed, device):
        model = HiCQAGNN.for_graph(
            graph,
            hidden=settings.hidden,
            layers=settings.layers,
            heads=settings.heads,
            dropout=settings.dropout,
            attention=settings.attention,
        ).to(device)
        inputs = model_inputs(graph, device, attention=settings.attention)
        augment = SignalDropout(graph, inputs, settings.signal_dropout)
        train_rows = torch.from_numpy(np.flatnonzero(targets.train & labelled)).to(device)
        y = torch.from_numpy(targets.y).to(device)
        w = torch.from_numpy(targets.weight).to(device)
        fit = _Rows(train_rows, y[train_rows], w[train_rows])
        if settings.wide_init:
            fit_wide(model, inputs.x["qa"], fit.rows, fit.y, fit.w)
        best_epoch, history = _fit_epochs(
            model, inputs, augment, fit, targets, settings, progress, cancel
        )
        model.eval()
        with torch.no_grad():
            logits = model(inputs)  # one forward pass for both reports and the scores
        final_train = evaluate(
            model, inputs, targets=targets, mask=targets.train & labelled, logits=logits
        )
        final_val = evaluate(model, inputs, targets=targets, logits=logits)
    metrics: dict[str, Any] = {
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "device": str(device),
        "train_seconds": round(time.perf_counter() - clock, 3),
        "parameters": sum(p.numel() for p in model.parameters()),
        **final_train.metrics("train"),
        **final_val.metrics("val"),
        **targets.summary(),
    }
    return TrainResult(model, metrics, history, inputs, device, final_val.scores)


def _fit_epochs(
    model: HiCQAGNN,
    inputs: ModelInputs,
    augment: SignalDropout,
    fit: _Rows,
    targets: TrainTargets,
    settings: GraphSettings,
    progress: ProgressReporter,
    cancel: CancelToken | None,
) -> tuple[int, list[dict[str, float]]]:
    """Full-batch AdamW epochs with early stopping on the validation loss (the training
    loss without validation rows); loads the best epoch's weights into `model`."""
    has_val = bool((targets.val & (targets.weight > 0)).any())
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    best_loss, best_epoch, best_state = float("inf"), -1, None
    history: list[dict[str, float]] = []
    progress.start("graph: training", settings.epochs)
    for epoch in range(settings.epochs):
        if cancel is not None:
            cancel.check()
        model.train()
        optimizer.zero_grad(set_to_none=True)
        logits = model(augment())
        loss = _weighted_bce(logits[fit.rows], fit.y, fit.w)
        loss.backward()
        optimizer.step()
        train_loss = float(loss.detach())
        if has_val:
            val = evaluate(model, inputs, targets=targets, loss_only=True)
            monitor = float(val.loss) if val.loss is not None else train_loss
        else:
            monitor = train_loss
        history.append(
            {"epoch": epoch, "train_loss": round(train_loss, 5), "val_loss": round(monitor, 5)}
        )
        progress.advance()
        # Improvement = at least 0.1% lower than the best so far.
        if best_epoch < 0 or monitor < best_loss - max(1e-5, 1e-3 * abs(best_loss)):
            best_loss, best_epoch = monitor, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= settings.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return best_epoch, history


def score(result: TrainResult, graph: HiCQAGraph) -> np.ndarray:
    """Consistency scores of the real QAs."""
    inputs = result.inputs or model_inputs(graph, result.device, attention=result.model.attention)
    return evaluate(result.model, inputs).scores[: graph.n_real]


@torch.no_grad()
def occlusion(
    result: TrainResult,
    graph: HiCQAGraph,
    rows: np.ndarray,
    reference: np.ndarray,
    *,
    base_scores: np.ndarray | None = None,
) -> np.ndarray:
    """How much each signal holds the score of QAs `rows` down: for every signal, the score
    change when the rows' (available) value is set to `reference[signal]` (typically the kept
    QAs' median). Positive = the signal pulled the score down. Shape (len(rows), S).

    All `rows` are changed at once, one forward pass per signal.
    """
    rows = np.asarray(rows, dtype=np.int64)
    s = len(graph.signal_names)
    out = np.zeros((len(rows), s), np.float32)
    if not len(rows) or not s:
        return out
    base = result.inputs or model_inputs(graph, result.device, attention=result.model.attention)
    before = base_scores if base_scores is not None else evaluate(result.model, base).scores
    view = QASignalView(graph, base)
    mask = graph.qa_signals.mask
    rows_t = torch.from_numpy(rows).to(view.z.device)
    for j in range(s):
        changed = mask[rows, j]
        if not changed.any() or not np.isfinite(reference[j]):
            continue
        z = view.z.clone()
        col = z[:, j]
        col[rows_t[torch.from_numpy(changed).to(z.device)]] = view.standardise(j, reference[j])
        after = evaluate(result.model, view.with_signals(z, view.mask)).scores
        out[:, j] = np.where(changed, after[rows] - before[rows], 0.0)
    return out


def save_run(
    folder: Path, result: TrainResult, extra: dict[str, Any] | None = None
) -> dict[str, Path]:
    """Write `model.pt` (state_dict + the config to rebuild the model) and `metrics.json`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / "model.pt"
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    torch.save({"state_dict": state, "config": result.model.config}, model_path)
    metrics_path = folder / "metrics.json"
    payload = {**result.metrics, **(extra or {}), "history": result.history}
    metrics_path.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    return {"model": model_path, "metrics": metrics_path}


def load_model(folder: Path, device: torch.device | str = "cpu") -> HiCQAGNN:
    """The model saved by `save_run` in `folder`."""
    saved = torch.load(Path(folder) / "model.pt", map_location=device, weights_only=True)
    model = HiCQAGNN.from_config(saved["config"])
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval()
