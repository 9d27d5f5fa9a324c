"""Context features of a QA node: what its nearest QAs say, from the QA k-NN lists.

Three columns: the mean similarity of its k nearest QAs, a no-neighbours flag, and the
highest similarity to a QA of another figure (a question that fits another figure as well:
a generic question, a QA moved to a near-duplicate figure, a restated sibling's twin). A
per-QA classifier cannot see them; the model's linear ("wide") path can, at O(QAs x k).

Chosen by ablation on `benchmarks/graph_quality.py` (logistic regression on the signals plus
a subset, 3 seeds, ROC-AUC): the shares of neighbours on the same figure / caption and the
highest similarity to a same-caption QA help the generic clusters (0.82 against 0.65) but
cost the sibling contradictions (0.72 against 0.79), the contradictions (0.86 against 0.89)
and the wrong captions (0.85 against 0.88), where they pull weight off the QA's own
signals; with these three the regression beats the per-QA one on every corruption kind.

A synthetic copy is measured against its own (new) figure with its source's neighbours
(see `copy_knn`).
"""

from __future__ import annotations

import numpy as np

from microvqa_tui.pipeline.graph.corrupt import SyntheticNegatives
from microvqa_tui.pipeline.graph.inputs import GraphInputs

NEIGHBOURHOOD_WIDTH = 3


def copy_knn(
    index: np.ndarray, sims: np.ndarray, source: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """k-NN lists of synthetic copies: the QA copied first (a copy is its near-duplicate, the
    same text with another answer or on another figure), then its nearest QAs."""
    if not len(source) or index.shape[1] == 0:
        return index[source], sims[source]
    lists = np.concatenate([source[:, None], index[source][:, :-1]], axis=1)
    weights = np.concatenate([np.ones((len(source), 1), sims.dtype), sims[source][:, :-1]], axis=1)
    has = index[source][:, :1] >= 0  # a source without an embedding has no neighbours
    return np.where(has, lists, index[source]), np.where(has, weights, sims[source])


def neighbourhood_features(
    inputs: GraphInputs,
    negatives: SyntheticNegatives,
    qa_knn: tuple[np.ndarray, np.ndarray] | None,
) -> np.ndarray:
    """(N_real + N_copies, NEIGHBOURHOOD_WIDTH): see the module doc, in that order."""
    n = inputs.n_qa + len(negatives)
    out = np.zeros((n, NEIGHBOURHOOD_WIDTH), np.float32)
    out[:, 1] = 1.0
    if qa_knn is None:
        return out
    index, sims = qa_knn
    copy_index, copy_sims = copy_knn(index, sims, negatives.source)
    index = np.concatenate([index, copy_index])
    sims = np.concatenate([sims, copy_sims])
    figure = np.concatenate([inputs.qa_figure, negatives.figure])
    has = index >= 0
    count = has.sum(1)
    other_fig = (inputs.qa_figure[np.maximum(index, 0)] != figure[:, None]) & has
    out[:, 0] = np.where(has, sims, 0.0).sum(1) / np.maximum(count, 1)
    out[:, 1] = (count == 0).astype(np.float32)
    out[:, 2] = np.where(other_fig, sims, 0.0).max(1, initial=0.0)
    return out
