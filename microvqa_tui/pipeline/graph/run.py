"""The HiCQA-Graph step on a store: read QAs, signals and embeddings, score, write back.

    report = run_graph(store, settings, progress=progress, cancel=cancel)

Reads `qas` (every QA, whatever its status), `signals` (per QA, or per caption for pair-level
signals, which are then also given to the caption's QAs), every `emb_<space>` table (a space
named `<family>_image|_caption|_qa` belongs to that node type; another is matched by its
ids) and, unless `human_labels` is given, the human accept/reject decisions (QA decisions,
then the review of the QA's MCQs). Writes each QA's `status` (kept / held_out), `score` and
`reason` (and each unreviewed imported MCQ takes its QA's verdict, see `mcq_verdict`), the
graph's edges (`edges`, this run's id), the run record, and the model weights +
metrics under the run folder. Nothing is deleted.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from microvqa_tui.common.decisions import effective_labels
from microvqa_tui.common.runs import record_run
from microvqa_tui.config.graph import GraphSettings
from microvqa_tui.errors import PipelineError
from microvqa_tui.pipeline.graph.inputs import (
    NODE_TYPES,
    Embeddings,
    GraphInputs,
    SignalTable,
    fingerprint,
)
from microvqa_tui.pipeline.graph.mcq_verdict import apply_to_imported_mcqs, no_qas_message
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter
from microvqa_tui.vocabulary import (
    ACTION_ACCEPT,
    REVIEW_ACCEPTED,
    REVIEW_REJECTED,
    STATUS_HELD_OUT,
    STATUS_KEPT,
)
from store import Store
from store.db import EMBEDDING_PREFIX

STEP = "graph"
WRITE_BATCH = 200_000
QA_COLUMNS = ["status", "reason", "score"]  # the QA columns this step owns


@dataclass
class GraphReport:
    run_id: str = ""
    qas: int = 0
    kept: int = 0
    held_out: int = 0
    threshold: float = 0.0
    human_labels: int = 0
    synthetic_negatives: int = 0
    imported_mcqs: dict[str, int] = field(default_factory=dict)  # their QA's verdict
    edges_written: int = 0
    signals: list[str] = field(default_factory=list)
    embedding_spaces: list[str] = field(default_factory=list)
    device: str = ""
    run_dir: str = ""
    up_to_date: bool = False  # nothing new since the last run: nothing retrained or written
    fingerprint: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# ---------------------------------------------------------------------------- reading


def _read(store: Store, table: str, columns: list[str], where: str | None = None) -> pa.Table:
    tbl = store.table(table)
    n = store.count(table, where)
    if n == 0:
        schema = tbl.schema
        return pa.table({c: pa.array([], type=schema.field(c).type) for c in columns})
    query = tbl.search()
    if where:
        query = query.where(where)
    return query.select(columns).limit(n).to_arrow()


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
    qas = _read(store, "qas", ["qa_id", "figure_id", "caption_id"])
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
    captions = _read(store, "captions", ["caption_id", "figure_id"])
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


def _read_signals(store, qa_ids, caption_ids, qa_caption):
    columns = ["signal_id", "item_id", "name", "value", "available", "model"]
    rows = _read(store, "signals", columns)
    n_qa, n_cap = len(qa_ids), len(caption_ids)
    if rows.num_rows == 0:
        return SignalTable.empty(n_qa), SignalTable.empty(n_cap), {}
    rows = rows.sort_by("signal_id")  # which of several rows wins must not be the store's order
    # Names as integer codes (a handful of distinct names over millions of rows).
    encoded = rows.column("name").combine_chunks().dictionary_encode()
    names = encoded.dictionary.to_pylist()
    ordered = sorted(names)
    code_of = np.array([ordered.index(n) for n in names], np.int64)
    codes = code_of[np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64)]
    value = rows.column("value").to_numpy(zero_copy_only=False).astype(np.float32)  # None -> nan
    available = np.asarray(
        rows.column("available").fill_null(False).to_numpy(zero_copy_only=False), bool
    )
    available &= np.isfinite(value)
    qa_pos = _positions(rows.column("item_id"), qa_ids)
    cap_pos = _positions(rows.column("item_id"), caption_ids)
    models: dict[str, str] = {}
    model_col = rows.column("model").to_numpy(zero_copy_only=False)
    for code, name in enumerate(ordered):
        first = np.flatnonzero((codes == code) & (model_col != ""))[:1]
        if len(first):
            models[name] = str(model_col[first[0]])
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
    for table_name in sorted(store.table_names()):
        if not table_name.startswith(EMBEDDING_PREFIX):
            continue
        space = table_name[len(EMBEDDING_PREFIX) :]
        data = store.embedding_table(space).search().select(["item_id", "vector"])
        n = store.embedding_table(space).count_rows()
        if n == 0:
            continue
        data = data.limit(n).to_arrow()
        typed = _space_node_type(space)
        if typed is None:  # match by ids: the node type most of its ids belong to
            hits = {
                t: int((_positions(data.column("item_id"), ids[t]) >= 0).sum()) for t in NODE_TYPES
            }
            best = max(hits, key=lambda t: hits[t])
            if hits[best] == 0:
                continue
            typed = (best, space)
        node_type, family = typed
        if family in embeddings.get(node_type, {}):
            continue
        pos = _positions(data.column("item_id"), ids[node_type])
        vectors = _vectors(data.column("vector"))
        keep = pos >= 0
        if not keep.any():
            continue
        full = np.zeros((len(ids[node_type]), vectors.shape[1]), np.float32)
        mask = np.zeros(len(ids[node_type]), bool)
        full[pos[keep]] = vectors[keep]
        mask[pos[keep]] = True
        embeddings.setdefault(node_type, {})[family] = Embeddings(full, mask)
        spaces.append(space)
    return embeddings, spaces


def human_labels_from_store(store: Store) -> dict[str, int]:
    """Standing accept (1) / reject (0) decisions on QAs; where a QA has none, the review of
    its MCQs (accepted if one is accepted, rejected if all reviewed ones are rejected)."""
    labels: dict[str, int] = {}
    if store.count("decisions") > 0:
        for item_id, action in effective_labels(store, "qa").items():
            labels[item_id] = 1 if action == ACTION_ACCEPT else 0
    if store.count("mcqs") == 0:
        return labels
    mcqs = _read(store, "mcqs", ["qa_id", "review"], where="review != 'unreviewed' AND qa_id != ''")
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


def last_fingerprint(store: Store) -> str | None:
    """The input digest of the newest finished graph run, None when there is none."""
    runs = store.rows(
        "runs", f"step = '{STEP}' AND status = 'done'", columns=["started_at", "config_json"]
    )
    if not runs:
        return None
    newest = max(runs, key=lambda r: str(r["started_at"]))
    return json.loads(newest["config_json"] or "{}").get("inputs_fingerprint")


# ---------------------------------------------------------------------------- writing


def _signal_json(signals: SignalTable, extra: dict[str, np.ndarray] | None = None) -> list[str]:
    names = signals.names
    values = np.round(signals.values.astype(np.float64), 4).tolist()
    mask = signals.mask.tolist()
    extra_items = [
        (k, np.round(v.astype(np.float64), 4).tolist()) for k, v in (extra or {}).items()
    ]
    out = []
    for i, (vals, ok) in enumerate(zip(values, mask, strict=True)):
        d = {n: v for n, v, a in zip(names, vals, ok, strict=True) if a}
        for k, col in extra_items:
            d[k] = col[i]
        out.append(json.dumps(d))
    return out


def _write_qas(store: Store, inputs: GraphInputs, scores, keep, reasons) -> None:
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


def _edge_table(
    run_id: str, relation: str, src_type, src_ids, dst_type, dst_ids, weight, attrs, start: int
) -> pa.Table:
    n = len(src_ids)
    return pa.table(
        {
            "edge_id": [f"{run_id}:{relation}:{start + i}" for i in range(n)],
            "run_id": pa.array([run_id] * n, pa.string()),
            "src_type": pa.array([src_type] * n, pa.string()),
            "src_id": pa.array(src_ids, pa.string()),
            "dst_type": pa.array([dst_type] * n, pa.string()),
            "dst_id": pa.array(dst_ids, pa.string()),
            "relation": pa.array([relation] * n, pa.string()),
            "weight": pa.array(np.asarray(weight, np.float64), pa.float64()),
            "attrs_json": pa.array(attrs, pa.string()),
        }
    )


def _write_edges(store: Store, run_id: str, inputs: GraphInputs, outcome) -> int:
    """depicts (image -> caption), asks (caption -> QA), about (QA -> image) and knn
    (node -> neighbour, weight = cosine) of the real nodes; attrs carry the signals."""
    graph = outcome.graph
    qa_ids = np.asarray(inputs.qa_ids, dtype=object)
    fig_ids = np.asarray(inputs.figure_ids, dtype=object)
    cap_ids = np.asarray(inputs.caption_ids, dtype=object)
    ids = {"image": fig_ids, "caption": cap_ids, "qa": qa_ids}
    qa_json = np.asarray(_signal_json(inputs.signals, {"score": outcome.scores}), dtype=object)
    written = 0

    def put(table: pa.Table) -> None:
        nonlocal written
        for start in range(0, table.num_rows, WRITE_BATCH):
            store.append("edges", table.slice(start, WRITE_BATCH))
        written += table.num_rows

    if inputs.n_captions:
        cap_json = _signal_json(inputs.caption_signals)
        j = inputs.caption_signals.index("clip_image_caption")
        weight = (
            inputs.caption_signals.values[:, j] if j is not None else np.zeros(inputs.n_captions)
        )
        put(
            _edge_table(
                run_id,
                "depicts",
                "image",
                fig_ids[inputs.caption_figure].tolist(),
                "caption",
                cap_ids.tolist(),
                weight,
                cap_json,
                0,
            )
        )
    has = np.flatnonzero(inputs.qa_caption >= 0)
    if len(has):
        put(
            _edge_table(
                run_id,
                "asks",
                "caption",
                cap_ids[inputs.qa_caption[has]].tolist(),
                "qa",
                qa_ids[has].tolist(),
                outcome.scores[has],
                qa_json[has].tolist(),
                0,
            )
        )
    put(
        _edge_table(
            run_id,
            "about",
            "qa",
            qa_ids.tolist(),
            "image",
            fig_ids[inputs.qa_figure].tolist(),
            outcome.scores,
            qa_json.tolist(),
            0,
        )
    )
    offset = 0
    for node_type, (index, sims) in graph.knn.items():
        rows = np.repeat(np.arange(index.shape[0]), index.shape[1])
        ranks = np.tile(np.arange(index.shape[1]), index.shape[0])
        cols = index.reshape(-1)
        ok = cols >= 0
        rank_json = np.asarray(
            [json.dumps({"rank": r + 1}) for r in range(index.shape[1])], dtype=object
        )
        put(
            _edge_table(
                run_id,
                "knn",
                node_type,
                ids[node_type][rows[ok]].tolist(),
                node_type,
                ids[node_type][cols[ok]].tolist(),
                sims.reshape(-1)[ok],
                rank_json[ranks[ok]].tolist(),
                offset,
            )
        )
        offset += int(ok.sum())
    return written


# ---------------------------------------------------------------------------- the step


def _settings(settings: Any) -> GraphSettings:
    if isinstance(settings, GraphSettings):
        return settings
    value = getattr(settings, "graph", None)
    if value is None:
        return GraphSettings()
    if isinstance(value, GraphSettings):
        return value
    if isinstance(value, dict):
        return GraphSettings.model_validate(value)
    return GraphSettings.model_validate(value.model_dump())


def run_graph(
    store: Store,
    settings: Any = None,
    *,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
    human_labels: dict[str, int] | None = None,
    keep_fraction: float | None = None,
    seed: int | None = None,
    force: bool = False,
) -> GraphReport:
    """Build, train, score and filter; write statuses, scores, reasons, edges and the run.

    When nothing the scores depend on changed since the last finished run (no new QA,
    signal, embedding, decision or setting; see `inputs.fingerprint`), nothing is retrained
    or written (`report.up_to_date`) unless `force`.

    `settings`: the tool's `Settings` (its `graph` section, defaults while not mounted) or a
    `GraphSettings`. `keep_fraction` / `seed` override the settings (defaults 0.75 / 0).
    `human_labels` (`{qa_id: 1 accept | 0 reject}`) replaces the decisions read from the store.
    A cancel leaves the QAs untouched.
    """
    from microvqa_tui.pipeline.graph.pipeline import fit_and_filter, human_array
    from microvqa_tui.pipeline.graph.train import save_run

    progress = progress or NullProgress()
    gs = _settings(settings)
    overrides: dict[str, Any] = {}
    if keep_fraction is not None:
        overrides["keep_fraction"] = keep_fraction
    if seed is not None:
        overrides["seed"] = seed
    if overrides:
        gs = gs.model_copy(update=overrides)
    device = gs.device
    models = getattr(settings, "models", None)
    if device == "auto" and models is not None:
        device = getattr(models, "device", "auto")

    report = GraphReport()
    clock = time.perf_counter()
    progress.start("graph: reading store", None)
    inputs, found = read_inputs(store)
    if human_labels is None:
        human_labels = human_labels_from_store(store)
    human = human_array(inputs.qa_ids, human_labels)
    report.timings["read_s"] = round(time.perf_counter() - clock, 3)
    if cancel is not None:
        cancel.check()

    config = {**gs.model_dump(mode="json"), "device": device}
    report.fingerprint = fingerprint(inputs, human, config)
    if not force and last_fingerprint(store) == report.fingerprint:
        # Same QAs, signals, embeddings, decisions and settings as the last run: its scores
        # stand (a retrain would give the very same ones), so nothing is written.
        report.up_to_date = True
        report.qas = inputs.n_qa
        report.kept = store.count("qas", f"status = '{STATUS_KEPT}'")
        report.held_out = store.count("qas", f"status = '{STATUS_HELD_OUT}'")
        report.human_labels = 0 if human is None else int((human >= 0).sum())
        return report
    config["inputs_fingerprint"] = report.fingerprint
    with record_run(store, STEP, config=config) as run:
        report.run_id = run.run_id
        run.models = {
            "signals": found["signal_models"],
            "embedding_spaces": found["embedding_spaces"],
        }
        try:
            outcome = fit_and_filter(
                inputs, gs, human=human, device=device, progress=progress, cancel=cancel
            )
        except ValueError as exc:
            raise PipelineError(f"the graph cannot be trained: {exc}") from None
        report.timings.update(outcome.timings)

        run_dir = Path(gs.run_dir) if gs.run_dir else Path(store.path) / "graph_runs" / run.run_id
        save_run(run_dir, outcome.result, {"run_id": run.run_id, "timings": report.timings})

        clock = time.perf_counter()
        progress.start("graph: writing", None)
        _write_qas(store, inputs, outcome.scores, outcome.filtered.keep, outcome.filtered.reasons)
        report.imported_mcqs = apply_to_imported_mcqs(store, run.run_id)
        if gs.write_edges:
            report.edges_written = _write_edges(store, run.run_id, inputs, outcome)
        report.timings["write_s"] = round(time.perf_counter() - clock, 3)

        report.qas = inputs.n_qa
        report.kept = outcome.filtered.n_kept
        report.held_out = outcome.filtered.n_held_out
        report.threshold = round(outcome.filtered.threshold, 5)
        report.human_labels = 0 if human is None else int((human >= 0).sum())
        report.synthetic_negatives = len(outcome.negatives)
        report.signals = inputs.signals.present()
        report.embedding_spaces = found["embedding_spaces"]
        report.device = outcome.metrics.get("device", "")
        report.run_dir = str(run_dir)
        report.metrics = outcome.metrics
        run.counts.update(
            {
                "qas": report.qas,
                "kept": report.kept,
                "held_out": report.held_out,
                "human_labels": report.human_labels,
                "synthetic_negatives": report.synthetic_negatives,
                "imported_mcqs": report.imported_mcqs,
                "edges": report.edges_written,
                "metrics": {
                    k: v
                    for k, v in outcome.metrics.items()
                    if not k.startswith(("nodes_", "edges_"))
                },
            }
        )
        run.timings.update(report.timings)
        run.message = (
            f"kept {report.kept}/{report.qas} QAs (score >= {report.threshold:.3f}); "
            f"weights and metrics in {run_dir}"
        )
    return report
