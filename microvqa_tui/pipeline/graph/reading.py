"""Reading the graph's inputs from a store: QAs, captions, signals, embeddings and human
decisions, in an order that does not depend on how the store returns rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from microvqa_tui.common.decisions import effective_labels
from microvqa_tui.errors import PipelineError
from microvqa_tui.pipeline.graph.inputs import NODE_TYPES, Embeddings, GraphInputs, SignalTable
from microvqa_tui.pipeline.graph.mcq_verdict import no_qas_message
from microvqa_tui.vocabulary import ACTION_ACCEPT, REVIEW_ACCEPTED, REVIEW_REJECTED
from store import Store
from store.db import EMBEDDING_PREFIX


def _positions(ids: pa.Array | pa.ChunkedArray, universe: list[str]) -> np.ndarray:
    """Index of each id in `universe`, -1 where absent."""
    found = pc.index_in(ids, value_set=pa.array(universe, pa.string()))
    return np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _vectors(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(arr) == 0:
        return np.zeros((0, 0), np.float32)
    size = arr.type.list_size if pa.types.is_fixed_size_list(arr.type) else len(arr[0])
    flat = arr.flatten() if pa.types.is_fixed_size_list(arr.type) else pc.list_flatten(arr)
    return np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, size)


def _space_node_type(space: str) -> tuple[str, str] | None:
    """`clip_image` -> ("image", "clip"); None when the name does not say."""
    for node_type in NODE_TYPES:
        suffix = "_" + node_type
        if space.endswith(suffix) and len(space) > len(suffix):
            return node_type, space[: -len(suffix)]
    return None


def read_inputs(store: Store) -> tuple[GraphInputs, dict[str, Any]]:
    """The graph's inputs from the store, and what was found (spaces, signal models)."""
    qas = store.arrow("qas", columns=["qa_id", "figure_id", "caption_id"])
    if qas.num_rows == 0:
        message, hint = no_qas_message(store)
        raise PipelineError(message, hint=hint)
    # Node order decides the seeded draws (negatives, split): it must not depend on the order
    # the store returns rows in, which a write (ours included) may change.
    qas = qas.sort_by("qa_id")
    qa_ids = qas.column("qa_id").to_pylist()
    qa_fig_ids = qas.column("figure_id").to_pylist()
    qa_cap_ids = qas.column("caption_id").to_pylist()

    # Captions referenced by the QAs, with their figure (from the captions table, else the QA's).
    caption_figure_of: dict[str, str] = {}
    for cap, fig in zip(qa_cap_ids, qa_fig_ids, strict=True):
        if cap:
            caption_figure_of.setdefault(cap, fig)
    captions = store.arrow("captions", columns=["caption_id", "figure_id"])
    for cap, fig in zip(
        captions.column("caption_id").to_pylist(),
        captions.column("figure_id").to_pylist(),
        strict=True,
    ):
        if cap in caption_figure_of:
            caption_figure_of[cap] = fig
    caption_ids = sorted(caption_figure_of)
    figure_ids = sorted(set(qa_fig_ids) | set(caption_figure_of.values()))
    figure_pos = {f: i for i, f in enumerate(figure_ids)}
    caption_pos = {c: i for i, c in enumerate(caption_ids)}
    qa_figure = np.array([figure_pos[f] for f in qa_fig_ids], np.int64)
    qa_caption = np.array([caption_pos.get(c, -1) if c else -1 for c in qa_cap_ids], np.int64)
    caption_figure = np.array([figure_pos[caption_figure_of[c]] for c in caption_ids], np.int64)

    signals, caption_signals, models = _read_signals(store, qa_ids, caption_ids, qa_caption)
    embeddings, spaces = _read_embeddings(
        store, {"image": figure_ids, "caption": caption_ids, "qa": qa_ids}
    )
    inputs = GraphInputs(
        qa_ids=qa_ids,
        figure_ids=figure_ids,
        caption_ids=caption_ids,
        qa_figure=qa_figure,
        qa_caption=qa_caption,
        caption_figure=caption_figure,
        signals=signals,
        caption_signals=caption_signals,
        embeddings=embeddings,
    )
    return inputs, {"embedding_spaces": spaces, "signal_models": models}


def _name_codes(rows: pa.Table) -> tuple[np.ndarray, list[str]]:
    """Signal names as integer codes (a handful of names over millions of rows), in sorted
    name order, and the sorted names."""
    encoded = rows.column("name").combine_chunks().dictionary_encode()
    names = encoded.dictionary.to_pylist()
    ordered = sorted(names)
    code_of = np.array([ordered.index(n) for n in names], np.int64)
    return code_of[np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64)], ordered


def _read_signals(store, qa_ids, caption_ids, qa_caption):
    columns = ["signal_id", "item_id", "name", "value", "available", "model"]
    rows = store.arrow("signals", columns=columns)
    n_qa, n_cap = len(qa_ids), len(caption_ids)
    if rows.num_rows == 0:
        return SignalTable.empty(n_qa), SignalTable.empty(n_cap), {}
    codes, ordered = _name_codes(rows)
    qa_pos = _positions(rows.column("item_id"), qa_ids)
    cap_pos = _positions(rows.column("item_id"), caption_ids)
    item = np.where(qa_pos >= 0, qa_pos, np.where(cap_pos >= 0, n_qa + cap_pos, -1))
    key = (item * len(ordered) + codes)[item >= 0]
    if len(np.unique(key)) < len(key):
        # Several rows for one (item, signal): which wins must not be the store's order.
        # (Sorting millions of ids is the slowest part of the read; only done when needed.)
        rows = rows.sort_by("signal_id")
        codes, ordered = _name_codes(rows)
        qa_pos = _positions(rows.column("item_id"), qa_ids)
        cap_pos = _positions(rows.column("item_id"), caption_ids)
    value = rows.column("value").to_numpy(zero_copy_only=False).astype(np.float32)  # None -> nan
    available = np.asarray(
        rows.column("available").fill_null(False).to_numpy(zero_copy_only=False), bool
    )
    available &= np.isfinite(value)
    # Each signal's model: the least model name (not the first row: the store's order).
    named = rows.select(["name", "model"]).filter(pc.field("model") != "")
    models = {
        r["name"]: str(r["model_min"])
        for r in named.group_by("name").aggregate([("model", "min")]).to_pylist()
    }
    # Available rows last, so that they win when one (item, signal) has several rows.
    order = np.argsort(available, kind="stable")

    def table(pos: np.ndarray, n: int, cols: list[str]) -> SignalTable:
        values = np.zeros((n, len(cols)), np.float32)
        mask = np.zeros((n, len(cols)), bool)
        for j, name in enumerate(cols):
            sel = order[(codes[order] == ordered.index(name)) & (pos[order] >= 0)]
            values[pos[sel], j] = np.nan_to_num(value[sel])
            mask[pos[sel], j] = available[sel]
        return SignalTable(cols, values, mask)

    qa_names = [n for c, n in enumerate(ordered) if ((codes == c) & (qa_pos >= 0)).any()]
    cap_names = [n for c, n in enumerate(ordered) if ((codes == c) & (cap_pos >= 0)).any()]
    qa_table = table(qa_pos, n_qa, sorted(set(qa_names) | set(cap_names)))
    cap_table = table(cap_pos, n_cap, cap_names)
    # A pair-level signal also reads on each of its caption's QAs that has no value of its own.
    has_cap = qa_caption >= 0
    for name in cap_names:
        j, jc = qa_table.index(name), cap_table.index(name)
        fill = has_cap & ~qa_table.mask[:, j]
        c = qa_caption[fill]
        qa_table.values[fill, j] = cap_table.values[c, jc]
        qa_table.mask[fill, j] = cap_table.mask[c, jc]
    return qa_table, cap_table, models


def _read_embeddings(store: Store, ids: dict[str, list[str]]):
    embeddings: dict[str, dict[str, Embeddings]] = {}
    spaces: list[str] = []
    universe: dict[str, pa.Array] = {}  # each node type's ids as Arrow, built once
    for table_name in sorted(store.table_names()):
        if not table_name.startswith(EMBEDDING_PREFIX):
            continue
        space = table_name[len(EMBEDDING_PREFIX) :]
        typed = _space_node_type(space)
        if typed is None:  # match by ids: the node type most of its ids belong to
            item_ids = store.arrow(table_name, columns=["item_id"]).column("item_id")
            hits = {t: int((_positions(item_ids, ids[t]) >= 0).sum()) for t in NODE_TYPES}
            best = max(hits, key=lambda t: hits[t])
            if hits[best] == 0:
                continue
            typed = (best, space)
        node_type, family = typed
        if family in embeddings.get(node_type, {}):
            continue
        read = _read_vectors(store, table_name, ids[node_type], universe.get(node_type))
        if read is None:
            continue
        full, mask, universe[node_type] = read
        embeddings.setdefault(node_type, {})[family] = Embeddings(full, mask)
        spaces.append(space)
    return embeddings, spaces


READ_BATCH = 131_072  # rows per streamed batch of an embedding table


def _read_vectors(store: Store, table_name: str, ids: list[str], universe: pa.Array | None):
    """The vectors of `ids` (zeros where absent) and which are present, streamed a batch at a
    time into one float32 matrix: memory is the matrix plus one batch, not the table twice.
    Returns (matrix, mask, the ids as Arrow) or None when none of `ids` has a vector."""
    universe = universe if universe is not None else pa.array(ids, pa.string())
    full: np.ndarray | None = None
    mask = np.zeros(len(ids), bool)
    for batch in store.batches(table_name, ["item_id", "vector"], batch_size=READ_BATCH):
        pos = pc.index_in(batch.column("item_id"), value_set=universe)
        pos = np.asarray(pos.fill_null(-1).to_numpy(zero_copy_only=False), np.int64)
        keep = pos >= 0
        if not keep.any():
            continue
        vectors = _vectors(batch.column("vector"))
        if full is None:
            full = np.zeros((len(ids), vectors.shape[1]), np.float32)
        full[pos[keep]] = vectors[keep]
        mask[pos[keep]] = True
    return None if full is None else (full, mask, universe)


def human_labels_from_store(store: Store) -> dict[str, int]:
    """Standing accept (1) / reject (0) decisions on QAs; where a QA has none, the review of
    its MCQs (accepted if one is accepted, rejected if all reviewed ones are rejected)."""
    labels: dict[str, int] = {}
    if store.count("decisions") > 0:
        for item_id, action in effective_labels(store, "qa").items():
            labels[item_id] = 1 if action == ACTION_ACCEPT else 0
    if store.count("mcqs") == 0:
        return labels
    mcqs = store.arrow("mcqs", "review != 'unreviewed' AND qa_id != ''", ["qa_id", "review"])
    by_qa: dict[str, list[str]] = {}
    for qa_id, review in zip(
        mcqs.column("qa_id").to_pylist(), mcqs.column("review").to_pylist(), strict=True
    ):
        by_qa.setdefault(qa_id, []).append(review)
    for qa_id, reviews in by_qa.items():
        if qa_id in labels:
            continue
        if REVIEW_ACCEPTED in reviews:
            labels[qa_id] = 1
        elif reviews and all(r == REVIEW_REJECTED for r in reviews):
            labels[qa_id] = 0
    return labels
