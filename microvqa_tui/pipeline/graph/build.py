"""The HiCQA-Graph as a `HeteroData`: image, caption and QA nodes and their edges.

Relations (each with its reverse `rev_<name>`, so messages flow both ways):

* image -depicts-> caption, edge attributes: the caption's pair-level signals;
* caption -asks-> qa and qa -about-> image, edge attributes: the QA's signals;
* t -knn-> t for t in image, caption, qa: each node receives from its k most similar
  nodes of its type (cosine of the embeddings), edge attribute: the similarity.

Signal attributes are `[standardised value (0 when unavailable), available flag]` per signal
plus a constant 1. Node features are the embeddings of every family the type has
(standardised per column, zeros + a missing flag where a node has none); QA nodes also carry
their neighbourhood agreement (share of their nearest QAs on the same figure / caption, mean
similarity; see `neighbourhood_features`) and their signal features, captions their
pair-level signal features.

Synthetic negatives (see `corrupt.py`) are appended as extra QA nodes after the real ones.
They receive messages (from their new caption and image, and from their source's k-NN
neighbours) but send none, so they never change a real node's representation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch_geometric.data import HeteroData

from microvqa_tui.pipeline.graph.context import (
    NEIGHBOURHOOD_WIDTH,
    copy_knn,
    neighbourhood_features,
)
from microvqa_tui.pipeline.graph.corrupt import SyntheticNegatives
from microvqa_tui.pipeline.graph.inputs import NODE_TYPES, Embeddings, GraphInputs, SignalTable
from microvqa_tui.pipeline.graph.knn import knn, knn_edges

REL_DEPICTS = ("image", "depicts", "caption")
REL_ASKS = ("caption", "asks", "qa")
REL_ABOUT = ("qa", "about", "image")
BASE_RELATIONS = (REL_DEPICTS, REL_ASKS, REL_ABOUT)

EdgeType = tuple[str, str, str]


def reverse(rel: EdgeType) -> EdgeType:
    return (rel[2], "rev_" + rel[1], rel[0])


def knn_relation(node_type: str) -> EdgeType:
    return (node_type, "knn", node_type)


# Relations whose QA endpoint's signals are their edge attributes: relation -> QA side (0/1).
QA_RELATIONS: dict[EdgeType, int] = {
    REL_ASKS: 1,
    reverse(REL_ASKS): 0,
    REL_ABOUT: 0,
    reverse(REL_ABOUT): 1,
}


@dataclass
class Standardizer:
    """Per-signal mean and spread of the available values (spread 1 where undefined)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, table: SignalTable) -> Standardizer:
        s = len(table.names)
        mean = np.zeros(s, np.float32)
        std = np.ones(s, np.float32)
        for j in range(s):
            v = table.values[table.mask[:, j], j]
            if v.size:
                mean[j] = v.mean()
                sd = v.std()
                std[j] = sd if sd > 1e-6 else 1.0
        return cls(mean, std)

    def features(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """`[z-value (0 if unavailable) ..., available ...]`, (N, 2S)."""
        z = np.where(mask, (values - self.mean) / self.std, 0.0).astype(np.float32)
        return np.concatenate([z, mask.astype(np.float32)], axis=1)


@dataclass
class HiCQAGraph:
    data: HeteroData
    n_real: int  # real QA nodes come first
    copies: SyntheticNegatives
    signal_names: list[str]
    standardizer: Standardizer
    qa_signals: SignalTable  # real QAs then copies
    qa_signal_offset: int  # first column of the signal features in data["qa"].x
    context_width: int = NEIGHBOURHOOD_WIDTH  # neighbourhood columns just before them
    knn: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    families: dict[str, list[str]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def n_copies(self) -> int:
        return len(self.copies)

    @property
    def n_qa_nodes(self) -> int:
        return self.n_real + self.n_copies

    def qa_signal_features(self, values: np.ndarray, mask: np.ndarray):
        """Node features of the QAs and attributes of their edges for other signal values.

        Used to ask the model "what if this signal were different" (see `train.occlusion`).
        Returns `(x_qa, {relation: edge_attr})`.
        """
        sig = torch.from_numpy(self.standardizer.features(values, mask))
        x = self.data["qa"].x.clone()
        x[:, self.qa_signal_offset : self.qa_signal_offset + sig.shape[1]] = sig
        attrs = {}
        for rel, side in QA_RELATIONS.items():
            if rel in self.data.edge_types:
                qa_index = self.data[rel].edge_index[side]
                attrs[rel] = _with_constant(sig[qa_index])
        return x, attrs

    def summary(self) -> dict[str, int]:
        out = {f"nodes_{t}": int(self.data[t].num_nodes) for t in NODE_TYPES}
        for rel in self.data.edge_types:
            out[f"edges_{rel[0]}_{rel[1]}_{rel[2]}"] = int(self.data[rel].edge_index.shape[1])
        return out


def _with_constant(attrs: torch.Tensor) -> torch.Tensor:
    return torch.cat([attrs, torch.ones(attrs.shape[0], 1, dtype=attrs.dtype)], dim=1)


PCA_SAMPLE = 20_000  # rows the principal axes are fitted on (a fixed-seed sample)


def principal_axes(z: np.ndarray, mask: np.ndarray, dims: int) -> np.ndarray | None:
    """The top `dims` principal axes (D, dims) of the rows of `z` in `mask`; None when `z`
    is already that narrow. Fitted on a fixed-seed sample, so the same inputs give the same
    axes; an eigendecomposition of the D x D covariance in torch (numpy's BLAS spawns its
    own threads, many times slower on a busy machine)."""
    if dims <= 0 or z.shape[1] <= dims or mask.sum() <= dims:
        return None
    rows = np.flatnonzero(mask)
    if len(rows) > PCA_SAMPLE:
        rows = np.sort(np.random.default_rng(0).choice(rows, PCA_SAMPLE, replace=False))
    sample = torch.from_numpy(z[rows]).double()
    sample -= sample.mean(0)
    _, vectors = torch.linalg.eigh(sample.T @ sample)  # ascending eigenvalues
    return vectors[:, -dims:].flip(1).float().numpy()


def embedding_features(
    families: dict[str, Embeddings], n: int, dims: int = 0
) -> tuple[np.ndarray, list[str]]:
    """Standardised embeddings of every family (their top `dims` principal components when
    `dims` > 0: the GNN's first layer costs rows x width, and a few dozen components keep
    what tells figures and topics apart) + a missing flag each; [1] when there are none."""
    parts: list[np.ndarray] = []
    names = sorted(families)
    for name in names:
        emb = families[name]
        z = emb.normalized()
        axes = principal_axes(z, emb.mask, dims)
        if axes is not None:
            z = (torch.from_numpy(z) @ torch.from_numpy(axes)).numpy()
        if emb.mask.any():
            valid = z[emb.mask]
            mean = valid.mean(0)
            std = valid.std(0)
            std[std < 1e-6] = 1.0
            z -= mean
            z /= std
        z[~emb.mask] = 0.0
        parts.append(z)
        parts.append((~emb.mask).astype(np.float32)[:, None])
    if not parts:
        parts.append(np.ones((n, 1), np.float32))
    return np.concatenate(parts, axis=1), names


def knn_vectors(families: dict[str, Embeddings], n: int) -> tuple[np.ndarray | None, np.ndarray]:
    """Concatenated unit vectors of every family (cosine = mean of the per-family cosines)."""
    if not families:
        return None, np.zeros(n, bool)
    parts = [families[name].normalized() for name in sorted(families)]
    valid = np.zeros(n, bool)
    for name in families:
        valid |= families[name].mask
    return (parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)), valid


def build_graph(
    inputs: GraphInputs,
    *,
    knn_k: int = 5,
    negatives: SyntheticNegatives | None = None,
    device: str | torch.device | None = "cpu",
    knn_memory_mb: int = 256,
    knn_fast: bool | None = None,
    embedding_dims: int = 0,
) -> HiCQAGraph:
    """The heterogeneous graph of `inputs`, with `negatives` appended as extra QA nodes.

    `device` is where the k-NN matrix products run (`knn_fast`: see `knn.knn`); the graph
    itself is built on the CPU (`model.model_inputs` moves it).
    """
    negatives = (
        negatives if negatives is not None else SyntheticNegatives.none(inputs.signals.names)
    )
    if list(negatives.signals.names) != list(inputs.signals.names):
        raise ValueError("synthetic negatives must carry the same signals as the real QAs")
    clock = time.perf_counter()
    graph_knn = _knn_lists(inputs, knn_k, device, knn_memory_mb, knn_fast)
    knn_s = time.perf_counter() - clock
    qa_signals = SignalTable(
        list(inputs.signals.names),
        np.concatenate([inputs.signals.values, negatives.signals.values]),
        np.concatenate([inputs.signals.mask, negatives.signals.mask]),
    )
    standardizer = Standardizer.fit(inputs.signals)
    cap_std = Standardizer.fit(inputs.caption_signals)
    cap_features = cap_std.features(inputs.caption_signals.values, inputs.caption_signals.mask)
    qa_features = standardizer.features(qa_signals.values, qa_signals.mask)
    data = HeteroData()
    families, offset = _add_nodes(
        data, inputs, negatives, graph_knn, (qa_features, cap_features), embedding_dims
    )
    _add_structural_edges(data, inputs, negatives, torch.from_numpy(qa_features), cap_features)
    _add_knn_edges(data, graph_knn, negatives)
    return HiCQAGraph(
        data=data,
        n_real=inputs.n_qa,
        copies=negatives,
        signal_names=list(inputs.signals.names),
        standardizer=standardizer,
        qa_signals=qa_signals,
        qa_signal_offset=offset,
        knn=graph_knn,
        families=families,
        timings={"knn_s": round(knn_s, 3)},
    )


def _knn_lists(
    inputs: GraphInputs,
    knn_k: int,
    device: str | torch.device | None,
    memory_mb: int,
    fast: bool | None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each node type's k-NN lists over the real nodes (types with < 2 embeddings: none)."""
    graph_knn: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for node_type in NODE_TYPES:
        vectors, valid = knn_vectors(inputs.embeddings.get(node_type, {}), inputs.count(node_type))
        if knn_k <= 0 or vectors is None or valid.sum() < 2:
            continue
        graph_knn[node_type] = knn(
            vectors, knn_k, valid=valid, device=device, memory_mb=memory_mb, fast=fast
        )
    return graph_knn


def _add_nodes(
    data: HeteroData,
    inputs: GraphInputs,
    negatives: SyntheticNegatives,
    graph_knn: dict[str, tuple[np.ndarray, np.ndarray]],
    signal_features: tuple[np.ndarray, np.ndarray],
    embedding_dims: int,
) -> tuple[dict[str, list[str]], int]:
    """Node features of every type; returns the embedding families per type and the column
    where the QA nodes' signal features start."""
    qa_features, cap_features = signal_features
    families: dict[str, list[str]] = {}
    offset = 0
    for node_type in NODE_TYPES:
        n = inputs.count(node_type)
        fams = inputs.embeddings.get(node_type, {})
        x, families[node_type] = embedding_features(fams, n, embedding_dims)
        if node_type == "qa":
            if len(negatives):
                x = np.concatenate([x, x[negatives.source]])
            x = np.concatenate(
                [x, neighbourhood_features(inputs, negatives, graph_knn.get("qa"))], 1
            )
            offset = x.shape[1]
            x = np.concatenate([x, qa_features], axis=1)
        elif node_type == "caption" and cap_features.shape[1]:
            x = np.concatenate([x, cap_features], axis=1)
        data[node_type].x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        data[node_type].num_nodes = x.shape[0]
    return families, offset


def _add_structural_edges(
    data: HeteroData,
    inputs: GraphInputs,
    negatives: SyntheticNegatives,
    sig: torch.Tensor,
    cap_features: np.ndarray,
) -> None:
    """image-depicts-caption, caption-asks-qa, qa-about-image and their reverses; a copy
    receives from its caption and image but sends nothing."""
    caption_idx = np.arange(inputs.n_captions)
    data[REL_DEPICTS].edge_index = torch.from_numpy(np.stack([inputs.caption_figure, caption_idx]))
    cap_attr = _with_constant(torch.from_numpy(cap_features))
    data[REL_DEPICTS].edge_attr = cap_attr
    data[reverse(REL_DEPICTS)].edge_index = data[REL_DEPICTS].edge_index.flip(0)
    data[reverse(REL_DEPICTS)].edge_attr = cap_attr

    n_real = inputs.n_qa
    real = np.arange(n_real)
    copies = n_real + np.arange(len(negatives))
    has_cap = inputs.qa_caption >= 0
    copy_has_cap = negatives.caption >= 0
    # caption -> qa: real QAs and copies; qa -> caption: real QAs only.
    asks = np.concatenate(
        [
            np.stack([inputs.qa_caption[has_cap], real[has_cap]]),
            np.stack([negatives.caption[copy_has_cap], copies[copy_has_cap]]),
        ],
        axis=1,
    )
    data[REL_ASKS].edge_index = torch.from_numpy(asks.astype(np.int64))
    data[reverse(REL_ASKS)].edge_index = torch.from_numpy(
        np.stack([real[has_cap], inputs.qa_caption[has_cap]])
    )
    # qa -> image: real QAs only; image -> qa: real QAs and copies.
    data[REL_ABOUT].edge_index = torch.from_numpy(np.stack([real, inputs.qa_figure]))
    about_rev = np.concatenate(
        [np.stack([inputs.qa_figure, real]), np.stack([negatives.figure, copies])], axis=1
    )
    data[reverse(REL_ABOUT)].edge_index = torch.from_numpy(about_rev.astype(np.int64))
    for rel, side in QA_RELATIONS.items():
        data[rel].edge_attr = _with_constant(sig[data[rel].edge_index[side]])


def _add_knn_edges(
    data: HeteroData,
    graph_knn: dict[str, tuple[np.ndarray, np.ndarray]],
    negatives: SyntheticNegatives,
) -> None:
    """t -knn-> t edges weighted by similarity; a copy hears its source and its neighbours."""
    for node_type, (index, sims) in graph_knn.items():
        if node_type == "qa" and len(negatives):
            copy_index, copy_sims = copy_knn(index, sims, negatives.source)
            index = np.concatenate([index, copy_index])
            sims = np.concatenate([sims, copy_sims])
        edge_index, weight = knn_edges(index, sims)
        rel = knn_relation(node_type)
        data[rel].edge_index = torch.from_numpy(edge_index)
        data[rel].edge_attr = torch.from_numpy(weight[:, None])
