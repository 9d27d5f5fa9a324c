"""Writing the graph's results: each QA's status, score and reason, and the graph's edges."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from microvqa_tui.pipeline.graph.inputs import GraphInputs, SignalTable
from microvqa_tui.vocabulary import STATUS_HELD_OUT, STATUS_KEPT
from store import Store

if TYPE_CHECKING:
    from microvqa_tui.pipeline.graph.pipeline import GraphOutcome

WRITE_BATCH = 200_000
QA_COLUMNS = ["status", "reason", "score"]  # the QA columns this step owns


def _number_strings(values: np.ndarray) -> pa.Array:
    """Values rounded to 4 decimals as JSON number literals (Arrow's shortest round-trip
    formatting; a whole number reads `1`, not `1.0`)."""
    return pc.cast(pc.round(pa.array(np.asarray(values, np.float64)), 4), pa.string())


def _signal_json(signals: SignalTable, extra: dict[str, np.ndarray] | None = None) -> pa.Array:
    """One JSON object per row, `{"name": value, ...}` over the available signals, then
    `extra`'s columns; built column by column in Arrow (a million rows in about a second,
    where a `json.dumps` per row took ten)."""
    n = signals.values.shape[0]
    parts: list[pa.Array] = []
    columns = [
        (name, signals.values[:, j], signals.mask[:, j]) for j, name in enumerate(signals.names)
    ]
    columns += [(k, v, None) for k, v in (extra or {}).items()]
    for name, values, available in columns:
        item = pc.binary_join_element_wise(json.dumps(name) + ": ", _number_strings(values), "")
        if available is not None:
            item = pc.if_else(pa.array(available), item, pa.nulls(n, pa.string()))
        parts.append(item)
    if not parts:
        return pa.array(["{}"] * n, pa.string())
    body = pc.binary_join_element_wise(*parts, ", ", null_handling="skip")
    return pc.binary_join_element_wise("{", body, "}", "")


def write_qas(store: Store, inputs: GraphInputs, scores, keep, reasons) -> None:
    """Write the graph's own QA columns only, so a reviewer's edit made meanwhile stays;
    QAs added while the graph ran are not in `inputs` and are left as they are."""
    status = np.where(keep, STATUS_KEPT, STATUS_HELD_OUT)
    full = pa.table(
        {
            "qa_id": pa.array(list(inputs.qa_ids), pa.string()),
            "status": pa.array(status.tolist(), pa.string()),
            "reason": pa.array(list(reasons), pa.string()),
            "score": pa.array(np.asarray(scores, np.float64)),
        }
    )
    for start in range(0, full.num_rows, WRITE_BATCH):
        store.update_columns("qas", full.slice(start, WRITE_BATCH), QA_COLUMNS)


@dataclass
class _Edges:
    """One relation's edges between two node types (ids aligned with weights and attrs);
    `start` numbers them after the relation's earlier batches."""

    relation: str
    src_type: str
    src_ids: list[str]
    dst_type: str
    dst_ids: list[str]
    weight: np.ndarray
    attrs: list[str] | pa.Array
    start: int = 0

    def to_arrow(self, run_id: str) -> pa.Table:
        n = len(self.src_ids)
        return pa.table(
            {
                "edge_id": pc.binary_join_element_wise(
                    f"{run_id}:{self.relation}:",
                    pc.cast(pa.array(np.arange(self.start, self.start + n)), pa.string()),
                    "",
                ),
                "run_id": pa.array([run_id] * n, pa.string()),
                "src_type": pa.array([self.src_type] * n, pa.string()),
                "src_id": pa.array(self.src_ids, pa.string()),
                "dst_type": pa.array([self.dst_type] * n, pa.string()),
                "dst_id": pa.array(self.dst_ids, pa.string()),
                "relation": pa.array([self.relation] * n, pa.string()),
                "weight": pa.array(np.asarray(self.weight, np.float64), pa.float64()),
                "attrs_json": pa.array(self.attrs, pa.string())
                if isinstance(self.attrs, list)
                else self.attrs,
            }
        )


def write_edges(store: Store, run_id: str, inputs: GraphInputs, outcome: GraphOutcome) -> int:
    """depicts (image -> caption), asks (caption -> QA), about (QA -> image) and knn
    (node -> neighbour, weight = cosine) of the real nodes; attrs carry the signals.
    Returns the number of edges written."""
    written = 0
    for edges in chain(_structural_edges(inputs, outcome.scores), _knn_edges(inputs, outcome)):
        table = edges.to_arrow(run_id)
        for start in range(0, table.num_rows, WRITE_BATCH):
            store.append("edges", table.slice(start, WRITE_BATCH))
        written += table.num_rows
    return written


def _structural_edges(inputs: GraphInputs, scores: np.ndarray) -> Iterator[_Edges]:
    qa_ids = np.asarray(inputs.qa_ids, dtype=object)
    fig_ids = np.asarray(inputs.figure_ids, dtype=object)
    cap_ids = np.asarray(inputs.caption_ids, dtype=object)
    qa_json = _signal_json(inputs.signals, {"score": scores})
    if inputs.n_captions:
        cap_json = _signal_json(inputs.caption_signals)
        j = inputs.caption_signals.index("clip_image_caption")
        weight = (
            inputs.caption_signals.values[:, j] if j is not None else np.zeros(inputs.n_captions)
        )
        yield _Edges(
            "depicts",
            "image",
            fig_ids[inputs.caption_figure].tolist(),
            "caption",
            cap_ids.tolist(),
            weight,
            cap_json,
        )
    has = np.flatnonzero(inputs.qa_caption >= 0)
    if len(has):
        yield _Edges(
            "asks",
            "caption",
            cap_ids[inputs.qa_caption[has]].tolist(),
            "qa",
            qa_ids[has].tolist(),
            scores[has],
            qa_json.take(pa.array(has)),
        )
    yield _Edges(
        "about",
        "qa",
        qa_ids.tolist(),
        "image",
        fig_ids[inputs.qa_figure].tolist(),
        scores,
        qa_json,
    )


def _knn_edges(inputs: GraphInputs, outcome: GraphOutcome) -> Iterator[_Edges]:
    """Each node type's k-NN lists as edges (attrs: the neighbour's rank); ids number on
    across node types."""
    ids = {
        "image": np.asarray(inputs.figure_ids, dtype=object),
        "caption": np.asarray(inputs.caption_ids, dtype=object),
        "qa": np.asarray(inputs.qa_ids, dtype=object),
    }
    offset = 0
    for node_type, (index, sims) in outcome.graph.knn.items():
        rows = np.repeat(np.arange(index.shape[0]), index.shape[1])
        ranks = np.tile(np.arange(index.shape[1]), index.shape[0])
        cols = index.reshape(-1)
        ok = cols >= 0
        rank_json = np.asarray(
            [json.dumps({"rank": r + 1}) for r in range(index.shape[1])], dtype=object
        )
        yield _Edges(
            "knn",
            node_type,
            ids[node_type][rows[ok]].tolist(),
            node_type,
            ids[node_type][cols[ok]].tolist(),
            sims.reshape(-1)[ok],
            rank_json[ranks[ok]].tolist(),
            offset,
        )
        offset += int(ok.sum())
