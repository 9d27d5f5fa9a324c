"""Scorers the GNN is measured against, on the very features and targets it trains on.

* `logistic` - a logistic regression on a QA's own signal features (per item), optionally
  with the graph's neighbourhood-agreement features;
* `propagate` - label propagation: a QA's score pulled towards the mean score of the QAs it
  is linked to (its k nearest QAs and the other QAs of its caption).

`benchmarks/graph_quality.py` adds gradient boosting (scikit-learn, a dev dependency).
"""

from __future__ import annotations

import numpy as np
import torch

from microvqa_tui.pipeline.graph.build import HiCQAGraph, Standardizer
from microvqa_tui.pipeline.graph.weak_labels import TrainTargets


def signal_features(graph: HiCQAGraph, *, neighbourhood: bool = False) -> np.ndarray:
    """Per QA node (real then copies): `[z-value, available]` per signal, and with
    `neighbourhood` the context features (`context.neighbourhood_features`). (N_nodes, F) float32."""
    std = Standardizer.fit(graph.qa_signals.rows(np.arange(graph.n_real)))
    x = std.features(graph.qa_signals.values, graph.qa_signals.mask)
    if neighbourhood:
        off = graph.qa_signal_offset
        x = np.concatenate(
            [x, graph.data["qa"].x[:, off - graph.context_width : off].numpy()], axis=1
        )
    return x.astype(np.float32)


def training_rows(targets: TrainTargets) -> np.ndarray:
    return np.flatnonzero(targets.train & (targets.weight > 0))


def logistic(x: np.ndarray, targets: TrainTargets, *, seed: int = 0, l2: float = 1e-3):
    """A weighted logistic regression (L-BFGS) on the training targets; P(consistent) of
    every row of `x`."""
    rows = torch.from_numpy(training_rows(targets))
    xt = torch.from_numpy(x)
    y = torch.from_numpy(targets.y)[rows]
    w = torch.from_numpy(targets.weight)[rows]
    generator = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(x.shape[1], 1)
    with torch.no_grad():
        model.weight.normal_(0.0, 0.01, generator=generator)
        model.bias.zero_()
    opt = torch.optim.LBFGS(model.parameters(), max_iter=200)

    def closure():
        opt.zero_grad()
        logits = model(xt[rows]).squeeze(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
        loss = (loss * w).sum() / w.sum() + l2 * model.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return torch.sigmoid(model(xt).squeeze(-1)).numpy()


def qa_links(graph: HiCQAGraph) -> torch.Tensor:
    """The real QAs' links as a row-normalised sparse (n_real, n_real) matrix: each QA to
    its k nearest QAs and to the other QAs of its caption."""
    n = graph.n_real
    pairs = []
    knn = graph.knn.get("qa")
    if knn is not None:
        index = knn[0]
        rows = np.repeat(np.arange(n), index.shape[1])
        cols = index.reshape(-1)
        ok = cols >= 0
        pairs.append(np.stack([rows[ok], cols[ok]]))
    asks = graph.data[("caption", "asks", "qa")].edge_index.numpy()
    real = asks[1] < n
    caption, qa = asks[0][real], asks[1][real]
    order = np.argsort(caption, kind="stable")
    caption, qa = caption[order], qa[order]
    # Siblings: every pair within a caption (captions hold a handful of QAs).
    starts = np.flatnonzero(np.r_[True, caption[1:] != caption[:-1]])
    sizes = np.diff(np.r_[starts, len(caption)])
    for size in np.unique(sizes):
        if size < 2:
            continue
        groups = qa[starts[sizes == size][:, None] + np.arange(size)]
        a = np.repeat(groups, size, axis=1).reshape(-1)
        b = np.tile(groups, (1, size)).reshape(-1)
        keep = a != b
        pairs.append(np.stack([a[keep], b[keep]]))
    if not pairs:
        return torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.int64), [], (n, n))
    edges = torch.from_numpy(np.concatenate(pairs, axis=1))
    degree = torch.bincount(edges[0], minlength=n).clamp(min=1).float()
    values = 1.0 / degree[edges[0]]
    return torch.sparse_coo_tensor(edges, values, (n, n)).coalesce()


def propagate(
    graph: HiCQAGraph, seeds: np.ndarray, *, alpha: float = 0.5, iterations: int = 20
) -> np.ndarray:
    """Label propagation: `s = (1 - alpha) * seeds + alpha * mean of the linked QAs' s`,
    iterated from the real QAs' `seeds`."""
    links = qa_links(graph)
    s0 = torch.from_numpy(np.asarray(seeds[: graph.n_real], np.float32))[:, None]
    s = s0.clone()
    for _ in range(iterations):
        s = (1 - alpha) * s0 + alpha * torch.sparse.mm(links, s)
    return s.squeeze(1).numpy()
