"""Vectors already in the store, and the top-k neighbour search dedup runs over them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from microvqa_tui.config.dedup import DedupSettings
from microvqa_tui.pipeline.dedup.items import Items
from microvqa_tui.pipeline.dedup.knn import AnnParams, Neighbours, all_pairs_topk, exact_topk
from microvqa_tui.progress import CancelToken, ProgressReporter
from store import Store
from store.queries import quote


@dataclass
class Search:
    """How neighbours are searched: the settings, device, scratch folder and progress."""

    cfg: DedupSettings
    device: str
    workdir: Path
    progress: ProgressReporter
    cancel: CancelToken | None

    def topk(self, vectors: np.ndarray, items: Items, k: int) -> tuple[np.ndarray, Neighbours]:
        """Top-k neighbours of the queried items among all items: all-pairs when every item
        is queried (exact or indexed), else exact queries-against-all.
        Returns (query rows, result)."""
        rows = np.nonzero(items.query)[0]
        if len(rows) == len(vectors):
            result = all_pairs_topk(
                vectors,
                k,
                method=self.cfg.method,
                device=self.device,
                ann=AnnParams(index_type=self.cfg.ann_index),
                ann_min_rows=self.cfg.ann_min_rows,
                workdir=self.workdir,
                memory_mb=self.cfg.memory_mb,
                progress=self.progress,
                cancel=self.cancel,
            )
            return rows, result
        groups = np.arange(len(vectors))
        return rows, self.exact(vectors[rows], vectors, k, groups[rows], groups)

    def exact(
        self,
        queries: np.ndarray,
        base: np.ndarray,
        k: int,
        query_groups: np.ndarray,
        base_groups: np.ndarray,
        normalize: bool = True,
    ) -> Neighbours:
        return exact_topk(
            queries,
            base,
            k,
            query_groups=query_groups,
            base_groups=base_groups,
            device=self.device,
            memory_mb=self.cfg.memory_mb,
            normalize=normalize,
            progress=self.progress,
            cancel=self.cancel,
        )


def stored_vectors(
    store: Store, space: str, ids: list[str], model: str | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """(vectors, has_vector mask, model) for `ids` from the store's `emb_<space>` table;
    only vectors of `model` when given, else the model most vectors come from is reported."""
    name = "emb_" + space
    if name not in store.table_names():
        return np.zeros((len(ids), 0), np.float32), np.zeros(len(ids), bool), ""
    dim = store.schema(name).field("vector").type.list_size
    position = {item: i for i, item in enumerate(ids)}
    out = np.zeros((len(ids), dim), np.float32)
    have = np.zeros(len(ids), bool)
    models: Counter[str] = Counter()
    where = f"model = {quote(model)}" if model else None
    for batch in store.batches(name, ["item_id", "vector", "model"], where, batch_size=8192):
        vecs = np.asarray(
            batch.column("vector").flatten().to_numpy(zero_copy_only=False), np.float32
        ).reshape(-1, dim)
        for row, item in enumerate(batch.column("item_id").to_pylist()):
            i = position.get(item)
            if i is not None:
                out[i] = vecs[row]
                have[i] = True
        models.update(batch.column("model").to_pylist())
    return out, have, (models.most_common(1)[0][0] if models else "")
