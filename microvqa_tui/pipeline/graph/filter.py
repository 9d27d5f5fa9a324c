"""Keep or hold out QAs by score, and say why each held-out QA was held out.

A reason names the signals that pulled the score down most (from the model's what-if
scores, `train.occlusion`) with their values, and how many of the QA's nearest QAs were held
out too and hang off other figures, after the reason's code (`vocabulary.GRAPH_REASONS`), e.g.
`graph_low_score: score 0.21 < 0.48: nli_contradict 0.91 (high), clip_image_qa 0.12 (low);
3/5 nearest QAs also held out, 4/5 on other figures`.
Nothing is deleted: held-out QAs stay in the store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from microvqa_tui.pipeline.graph.inputs import SIGNAL_DIRECTIONS, SignalTable
from microvqa_tui.vocabulary import GRAPH_AT_CUT, GRAPH_LOW_SCORE, REVIEWER_REJECTED

MAX_SIGNALS_IN_REASON = 3
MIN_EFFECT = 0.005  # what-if score changes below this are not worth naming


@dataclass
class FilterResult:
    keep: np.ndarray  # (N,) bool
    threshold: float  # kept QAs score at least this
    reasons: list[str]  # "" for kept QAs

    @property
    def n_kept(self) -> int:
        return int(self.keep.sum())

    @property
    def n_held_out(self) -> int:
        return int((~self.keep).sum())


def select(
    scores: np.ndarray, *, keep_fraction: float = 0.75, threshold: float | None = None
) -> tuple[np.ndarray, float]:
    """Keep `score >= threshold`, or else the best `round(keep_fraction * N)` QAs (ties broken
    by position, so exactly that many). Returns the mask and the score cut."""
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    if threshold is not None:
        return scores >= threshold, float(threshold)
    n_keep = min(n, int(np.floor(keep_fraction * n + 0.5)))
    keep = np.zeros(n, bool)
    if n_keep == 0:
        return keep, float("inf")
    order = np.argsort(-scores, kind="stable")
    keep[order[:n_keep]] = True
    return keep, float(scores[order[n_keep - 1]])


def reference_values(signals: SignalTable, keep: np.ndarray) -> np.ndarray:
    """Median of each signal over the kept QAs where available (else over all; NaN if none)."""
    ref = np.full(len(signals.names), np.nan, np.float32)
    for j in range(len(signals.names)):
        avail = signals.mask[: len(keep), j]
        pool = signals.values[: len(keep), j][avail & keep]
        if not pool.size:
            pool = signals.values[: len(keep), j][avail]
        if pool.size:
            ref[j] = np.median(pool)
    return ref


def _ranked_signals(
    rows: np.ndarray,
    signals: SignalTable,
    effects: np.ndarray | None,
    reference: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """For each of `rows`: the signals to name, best first, (len(rows), m) and which are real.

    Only signals on their weak side of the reference (low where higher means consistent,
    high where it means inconsistent) are named: a model that learned a non-monotone use of a
    signal may be pulled down by a good value, but "held out: agreement 0.9 (high)" explains
    nothing to a reviewer. Among those, the what-if effect decides where the model shows one;
    otherwise (or where no such signal had an effect worth naming) the signals furthest on
    their weak side do. None named: the score comes from the graph (neighbours, embeddings).
    """
    values = signals.values[rows]
    avail = signals.mask[rows]
    direction = np.array([SIGNAL_DIRECTIONS.get(n, 0) or 1 for n in signals.names], np.float32)
    badness = np.where(avail & np.isfinite(reference), direction * (reference - values), -np.inf)
    badness = np.where(badness > 0, badness, -np.inf)
    key = badness
    if effects is not None:
        effect_key = np.where(avail & (effects > MIN_EFFECT) & (badness > 0), effects, -np.inf)
        use_effect = np.isfinite(effect_key).any(axis=1, keepdims=True)
        key = np.where(use_effect, effect_key, badness)
    m = min(MAX_SIGNALS_IN_REASON, key.shape[1])
    order = np.argsort(-key, axis=1, kind="stable")[:, :m]
    return order, np.isfinite(np.take_along_axis(key, order, axis=1))


def _head(score: float, threshold: float, rejected: bool) -> str:
    """The reason's code (`vocabulary.GRAPH_REASONS`) and the score: `graph_low_score: score
    0.21 < 0.48`. A reviewer's reject comes first: it holds the QA out whatever its score."""
    if rejected:
        return f"{REVIEWER_REJECTED}: score {score:.2f}"
    if score < threshold:
        return f"{GRAPH_LOW_SCORE}: score {score:.2f} < {threshold:.2f}"
    return f"{GRAPH_AT_CUT}: score {score:.2f} at the cut {threshold:.2f} (ranked below the kept share)"


def explain(
    scores: np.ndarray,
    keep: np.ndarray,
    threshold: float,
    signals: SignalTable,
    *,
    effects: np.ndarray | None = None,
    effect_rows: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    knn_index: np.ndarray | None = None,
    human: np.ndarray | None = None,
    qa_figure: np.ndarray | None = None,
) -> list[str]:
    """One reason per held-out QA ("" for kept ones).

    `effects[i, s]`: how much signal s pulled QA `effect_rows[i]` down (see `train.occlusion`);
    `knn_index`: (N, k) nearest QAs (-1 = none); `human`: -1 none, 0 rejected, 1 accepted;
    `qa_figure` (N,): with it, a reason also says how many nearest QAs are on other figures.
    """
    n = len(scores)
    reasons = [""] * n
    held = np.flatnonzero(~keep)
    if not len(held):
        return reasons
    reference = reference if reference is not None else reference_values(signals, keep)
    row_effects = None
    if effects is not None and effect_rows is not None and len(signals.names):
        row_effects = np.zeros((n, len(signals.names)), np.float32)
        row_effects[np.asarray(effect_rows, dtype=np.int64)] = effects
        row_effects = row_effects[held]
    if len(signals.names):
        order, named = _ranked_signals(held, signals, row_effects, reference)
    else:
        order = np.zeros((len(held), 0), np.int64)
        named = np.zeros((len(held), 0), bool)
    if knn_index is not None and knn_index.size:
        nbrs = knn_index[held]
        has = nbrs >= 0
        n_nbrs = has.sum(1)
        n_held_nbrs = ((~keep[np.maximum(nbrs, 0)]) & has).sum(1)
        if qa_figure is not None:
            other = (qa_figure[np.maximum(nbrs, 0)] != qa_figure[held][:, None]) & has
            n_other = other.sum(1)
        else:
            n_other = None
    else:
        n_nbrs = n_held_nbrs = np.zeros(len(held), np.int64)
        n_other = None

    names = signals.names
    for i, row in enumerate(held.tolist()):
        head = _head(float(scores[row]), threshold, human is not None and human[row] == 0)
        parts = []
        for j, ok in zip(order[i].tolist(), named[i].tolist(), strict=True):
            if not ok:
                break
            value = float(signals.values[row, j])
            side = "low" if not np.isfinite(reference[j]) or value < reference[j] else "high"
            parts.append(f"{names[j]} {value:.2f} ({side})")
        if parts:
            text = f"{head}: {', '.join(parts)}"
        elif len(names) and signals.mask[row].any():
            text = f"{head}: no signal on its weak side; the graph (neighbours, embeddings)"
        else:
            text = f"{head}: no signal available"
        if n_nbrs[i]:
            text += f"; {int(n_held_nbrs[i])}/{int(n_nbrs[i])} nearest QAs also held out"
            if n_other is not None:
                text += f", {int(n_other[i])}/{int(n_nbrs[i])} on other figures"
        reasons[row] = text
    return reasons


def apply_human(keep: np.ndarray, human: np.ndarray | None) -> np.ndarray:
    """Reviewer decisions win over the score: accepted -> kept, rejected -> held out."""
    if human is None:
        return keep
    out = keep.copy()
    out[human == 1] = True
    out[human == 0] = False
    return out


def filter_scores(
    scores: np.ndarray,
    signals: SignalTable,
    *,
    keep_fraction: float = 0.75,
    threshold: float | None = None,
    effects: np.ndarray | None = None,
    effect_rows: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    knn_index: np.ndarray | None = None,
    human: np.ndarray | None = None,
    qa_figure: np.ndarray | None = None,
) -> FilterResult:
    """`select` + human decisions + `explain`, in one call."""
    keep, cut = select(scores, keep_fraction=keep_fraction, threshold=threshold)
    keep = apply_human(keep, human)
    reasons = explain(
        scores,
        keep,
        cut,
        signals,
        effects=effects,
        effect_rows=effect_rows,
        reference=reference,
        knn_index=knn_index,
        human=human,
        qa_figure=qa_figure,
    )
    return FilterResult(keep, cut, reasons)
