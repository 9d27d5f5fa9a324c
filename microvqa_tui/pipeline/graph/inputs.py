"""The HiCQA-Graph's inputs as plain arrays: nodes, links, signals and embeddings.

Everything downstream (build, weak labels, corruption, training, filter) works on these
arrays, so benchmarks and tests need no store; `run.py` fills them from one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from microvqa_tui.vocabulary import (  # noqa: F401  (the graph's modules import them here)
    AGENT_SIGNALS,
    NLI_SIGNALS,
    SIGNAL_CLIP_IMAGE_CAPTION,
    SIGNAL_CLIP_IMAGE_QA,
    SIGNAL_DIRECTIONS,
    SIGNAL_IMAGE_NEIGHBOUR_CAPTION,
    SIGNAL_TEXT_CAPTION_QA,
)

NODE_TYPES = ("image", "caption", "qa")

# Similarity signals that can be recomputed from embeddings for any pairing:
# name -> ((node type, embedding family), (node type, embedding family)).
SIMILARITY_SIGNALS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    SIGNAL_TEXT_CAPTION_QA: (("caption", "text"), ("qa", "text")),
    SIGNAL_CLIP_IMAGE_QA: (("image", "clip"), ("qa", "clip")),
    SIGNAL_CLIP_IMAGE_CAPTION: (("image", "clip"), ("caption", "clip")),
}

# Figure–caption (pair-level) signals that are properties of the pair alone, whatever QA
# hangs off it; a QA moved to another figure and caption reads that pair's value.
PAIR_SIGNALS = (SIGNAL_CLIP_IMAGE_CAPTION, SIGNAL_IMAGE_NEIGHBOUR_CAPTION)


@dataclass
class SignalTable:
    """One value and one availability flag per (item, signal); unavailable values are 0."""

    names: list[str]
    values: np.ndarray  # (N, S) float32
    mask: np.ndarray  # (N, S) bool

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        if self.values.ndim == 1:  # one signal given as a flat column
            self.values = self.values.reshape(-1, 1)
        if self.values.ndim != 2 or self.values.shape[1] != len(self.names):
            raise ValueError(
                f"signal values must be (items, {len(self.names)}), not {self.values.shape}"
            )
        self.mask = np.asarray(self.mask, dtype=bool).reshape(self.values.shape)
        bad = ~np.isfinite(self.values)
        if bad.any():  # a NaN is a missing value, never a number
            self.mask = self.mask & ~bad
        self.values = np.where(self.mask, self.values, 0.0).astype(np.float32)

    @classmethod
    def empty(cls, n: int) -> SignalTable:
        return cls([], np.zeros((n, 0), np.float32), np.zeros((n, 0), bool))

    @classmethod
    def from_columns(
        cls, n: int, columns: dict[str, tuple[np.ndarray, np.ndarray | None]]
    ) -> SignalTable:
        """`columns`: name -> (values, available); available None = all where finite."""
        names = list(columns)
        values = np.zeros((n, len(names)), np.float32)
        mask = np.zeros((n, len(names)), bool)
        for j, name in enumerate(names):
            vals, avail = columns[name]
            vals = np.asarray(vals, dtype=np.float32).reshape(n)
            values[:, j] = np.nan_to_num(vals)
            mask[:, j] = (
                np.isfinite(vals) if avail is None else np.asarray(avail, bool) & np.isfinite(vals)
            )
        return cls(names, values, mask)

    def __len__(self) -> int:
        return self.values.shape[0]

    def index(self, name: str) -> int | None:
        return self.names.index(name) if name in self.names else None

    def column(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        j = self.index(name)
        return None if j is None else (self.values[:, j], self.mask[:, j])

    def rows(self, index: np.ndarray) -> SignalTable:
        return SignalTable(list(self.names), self.values[index], self.mask[index])

    def present(self) -> list[str]:
        """Names of the signals available for at least one item."""
        return [n for j, n in enumerate(self.names) if self.mask[:, j].any()]


@dataclass
class Embeddings:
    """Vectors of one node type in one model family; rows without a vector have mask False."""

    vectors: np.ndarray  # (N, D) float32
    mask: np.ndarray  # (N,) bool

    def __post_init__(self) -> None:
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        self.mask = np.asarray(self.mask, dtype=bool).reshape(self.vectors.shape[0])
        norms = np.linalg.norm(self.vectors, axis=1)
        self.mask = self.mask & np.isfinite(norms) & (norms > 0)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def normalized(self) -> np.ndarray:
        """Unit vectors (zeros where missing)."""
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        out = np.divide(self.vectors, norms, out=np.zeros_like(self.vectors), where=norms > 0)
        out[~self.mask] = 0.0
        return out


@dataclass
class GraphInputs:
    """Nodes (images = figures, captions, QAs), their links, signals and embeddings.

    `qa_caption` is -1 for a QA without a caption. `signals` are per QA; `caption_signals`
    (optional) are pair-level signals of a caption and its figure (e.g. clip_image_caption,
    image_neighbour_caption_agreement).
    `embeddings[node_type][family]`, families such as "clip", "text" or "pixel" (the
    model-free image descriptor); any may be missing.
    """

    qa_ids: list[str]
    figure_ids: list[str]
    caption_ids: list[str]
    qa_figure: np.ndarray
    qa_caption: np.ndarray
    caption_figure: np.ndarray
    signals: SignalTable
    caption_signals: SignalTable | None = None
    embeddings: dict[str, dict[str, Embeddings]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.qa_figure = np.asarray(self.qa_figure, dtype=np.int64)
        self.qa_caption = np.asarray(self.qa_caption, dtype=np.int64)
        self.caption_figure = np.asarray(self.caption_figure, dtype=np.int64)
        if self.caption_signals is None:
            self.caption_signals = SignalTable.empty(len(self.caption_ids))
        self.validate()

    @property
    def n_qa(self) -> int:
        return len(self.qa_ids)

    @property
    def n_figures(self) -> int:
        return len(self.figure_ids)

    @property
    def n_captions(self) -> int:
        return len(self.caption_ids)

    def count(self, node_type: str) -> int:
        return {"image": self.n_figures, "caption": self.n_captions, "qa": self.n_qa}[node_type]

    def embedding(self, node_type: str, family: str) -> Embeddings | None:
        return self.embeddings.get(node_type, {}).get(family)

    def validate(self) -> None:
        nq, nf, nc = self.n_qa, self.n_figures, self.n_captions
        checks = [
            (self.qa_figure.shape == (nq,), "qa_figure must have one entry per QA"),
            (self.qa_caption.shape == (nq,), "qa_caption must have one entry per QA"),
            (self.caption_figure.shape == (nc,), "caption_figure must have one entry per caption"),
            (len(self.signals) == nq, "signals must have one row per QA"),
            (len(self.caption_signals) == nc, "caption_signals must have one row per caption"),
            (
                nq == 0 or (self.qa_figure.min() >= 0 and self.qa_figure.max() < nf),
                "qa_figure out of range",
            ),
            (
                nq == 0 or (self.qa_caption.min() >= -1 and self.qa_caption.max() < nc),
                "qa_caption out of range",
            ),
            (
                nc == 0 or (self.caption_figure.min() >= 0 and self.caption_figure.max() < nf),
                "caption_figure out of range",
            ),
        ]
        for node_type, families in self.embeddings.items():
            if node_type not in NODE_TYPES:
                checks.append((False, f"unknown node type {node_type!r} in embeddings"))
                continue
            for family, emb in families.items():
                checks.append(
                    (
                        emb.vectors.shape[0] == self.count(node_type),
                        f"embeddings {node_type}/{family} must have one row per {node_type}",
                    )
                )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


def fingerprint(inputs: GraphInputs, human: np.ndarray | None, config: dict) -> str:
    """A digest of everything a run's scores depend on: nodes, links, signals, embeddings,
    human labels and settings. Equal digests = the same scores (training is seeded)."""
    digest = hashlib.blake2b(digest_size=16)
    for ids in (inputs.qa_ids, inputs.figure_ids, inputs.caption_ids):
        digest.update("\x1f".join(ids).encode())
    arrays = [inputs.qa_figure, inputs.qa_caption, inputs.caption_figure]
    for table in (inputs.signals, inputs.caption_signals):
        digest.update("\x1f".join(table.names).encode())
        arrays += [table.values, table.mask]
    for node_type in sorted(inputs.embeddings):
        for family, emb in sorted(inputs.embeddings[node_type].items()):
            digest.update(f"{node_type}/{family}".encode())
            arrays += [emb.vectors, emb.mask]
    arrays.append(np.zeros(0, np.int8) if human is None else human)
    for array in arrays:
        digest.update(np.ascontiguousarray(array).data)
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    return digest.hexdigest()
