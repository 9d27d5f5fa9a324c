"""What the signals step reads and writes on the driver: the QAs and their signals still to
compute, the inputs a batch ships, the signal rows (a value replaces the placeholders), the
coverage, and the pixel-neighbour agreement of every caption (a k-NN over all figures).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from microvqa_tui.common.captions import caption_texts
from microvqa_tui.pipeline.embed import SPACES, item_inputs, stored_vectors, vectors_for
from microvqa_tui.pipeline.signals.families import (
    FAMILY_SPACES,
    QAItem,
    family_model_id,
    space_key,
)
from microvqa_tui.pipeline.signals.loading import MISSING, Models
from microvqa_tui.pipeline.step import batched
from microvqa_tui.vocabulary import FAMILY_SIGNALS
from store import Store
from store.queries import in_list

QA_COLUMNS = ["qa_id", "figure_id", "caption_id", "question", "answer"]


def existing_signals(store: Store, qa_ids: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cols = ["signal_id", "item_id", "name", "model", "available", "detail"]
    for chunk in batched(qa_ids, 400):
        rows.extend(store.rows("signals", in_list("item_id", chunk), cols))
    return rows


def todo_names(
    qa_ids: list[str], existing: list[dict[str, Any]], models: Models, names: list[str]
) -> dict[str, set[str]]:
    """qa_id -> signal names still to compute."""
    done: set[tuple[str, str]] = set()
    for row in existing:
        name = row["name"]
        if name not in models.signal_model or row["model"] != models.signal_model[name]:
            continue
        family = next(f for f, ns in FAMILY_SIGNALS.items() if name in ns)
        placeholder = not row["available"] and (row["detail"] or "").startswith(MISSING)
        if placeholder and family not in models.missing:
            continue  # the model is there now: compute the real value
        done.add((row["item_id"], name))
    return {q: {n for n in names if (q, n) not in done} for q in qa_ids}


def read_items(
    store: Store,
    qa_ids: list[str],
    need: dict[str, set[str]],
    ids: Models,
    families: list[str],
    pixel: dict[str, tuple[float | None, str]],
) -> list[QAItem]:
    """The items of `qa_ids` that still exist, with what their families need shipped."""
    by_id = {r["qa_id"]: r for r in store.get_many("qas", qa_ids, QA_COLUMNS)}
    qas = [by_id[i] for i in qa_ids if i in by_id]
    captions = caption_texts(store, qas, key="qa_id", fallback=False)
    items = [QAItem(q, need[q["qa_id"]], captions[q["qa_id"]] or None) for q in qas]
    for family, spaces in FAMILY_SPACES.items():
        names = set(FAMILY_SIGNALS[family])
        wanted = [it for it in items if it.need & names]
        if family in families and family not in ids.missing and wanted:
            for space in spaces:
                _ship_vectors(store, space, family_model_id(ids, family), wanted)
    if "agent" in families and "agent" not in ids.missing and ids.agent_image:
        _ship_images(store, [it for it in items if it.need & set(FAMILY_SIGNALS["agent"])])
    for it in items:
        if it.qa["caption_id"] in pixel:
            it.pixel = pixel[it.qa["caption_id"]]
    return items


def _ship_vectors(store: Store, space: str, model_id: str, items: list[QAItem]) -> None:
    """Each item's stored vector in `space`, else the input to encode it from."""
    keys = [k for it in items if (k := space_key(it.qa, space))]
    have = stored_vectors(store, space, keys, model_id)
    missing = [k for k in dict.fromkeys(keys) if k not in have]
    kept, inputs, _ = item_inputs(store, SPACES[space], missing) if missing else ([], [], [])
    found = dict(zip(kept, inputs, strict=True))
    for it in items:
        key = space_key(it.qa, space)
        if key in have:
            it.vectors[space] = have[key]
        elif key in found:
            it.inputs[space] = found[key]


def _ship_images(store: Store, items: list[QAItem]) -> None:
    figure_ids = sorted({it.qa["figure_id"] for it in items})
    columns = ["figure_id", "image_bytes", "image_path"]
    rows = store.get_many("figures", figure_ids, columns)
    images = {r["figure_id"]: r["image_bytes"] or r["image_path"] or None for r in rows}
    for it in items:
        it.image = images.get(it.qa["figure_id"])


def write_embeddings(store: Store, embeddings: list[tuple[str, str, str, str, Any]]) -> None:
    """Vectors a batch computed, per space and model (as `embed` stores them)."""
    groups: dict[tuple[str, str], list[tuple[str, str, Any]]] = defaultdict(list)
    for space, key, figure_id, model_id, vector in embeddings:
        groups[(space, model_id)].append((key, figure_id, vector))
    for (space, model_id), part in groups.items():
        vectors = np.stack([v for _, _, v in part])
        store.write_embeddings(
            space, [k for k, _, _ in part], vectors, model_id, [f for _, f, _ in part]
        )


def write_signals(store: Store, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    store.upsert("signals", rows)
    # a value replaces the "model missing" placeholders of other model names for the same signal
    fresh = [r for r in rows if r["available"]]
    if fresh:
        keep = [r["signal_id"] for r in fresh]
        items = sorted({r["item_id"] for r in fresh})
        names = sorted({r["name"] for r in fresh})
        where = (
            f"available = false AND {in_list('item_id', items)} AND {in_list('name', names)} "
            f"AND NOT {in_list('signal_id', keep)}"
        )
        store.delete("signals", where)


def coverage(store: Store, qa_ids: list[str], names: list[str]) -> dict[str, float]:
    if not qa_ids:
        return {n: 0.0 for n in names}
    wanted = set(qa_ids)
    have: dict[str, set[str]] = defaultdict(set)
    total = store.count("signals", "available = true")
    if total:
        for row in store.page(
            "signals", where="available = true", columns=["item_id", "name"], limit=total
        ):
            if row["item_id"] in wanted:
                have[row["name"]].add(row["item_id"])
    return {n: len(have[n]) / len(wanted) for n in names}


def all_neighbour_agreements(
    store: Store, text: Any, text_id: str, k: int, device: str
) -> dict[str, tuple[float | None, str]]:
    """caption_id -> (value or None, detail) for every caption in the store."""
    from microvqa_tui.models.pixel import MODEL_ID as PIXEL_MODEL
    from microvqa_tui.models.pixel import PixelDescriptor
    from microvqa_tui.pipeline.signals.neighbours import neighbour_caption_agreement

    rows = store.rows("captions", columns=["caption_id", "figure_id"])
    if not rows:
        return {}
    rows.sort(key=lambda r: r["caption_id"])
    caption_ids = [r["caption_id"] for r in rows]
    figure_ids = sorted({r["figure_id"] for r in rows})
    fig_pos = {f: i for i, f in enumerate(figure_ids)}
    cap_vecs: dict[str, np.ndarray] = {}
    for chunk in batched(caption_ids, 2048):
        cap_vecs.update(vectors_for(store, SPACES["text_caption"], text, text_id, chunk))
    fig_vecs: dict[str, np.ndarray] = {}
    descriptor = PixelDescriptor()
    for chunk in batched(figure_ids, 256):  # image bytes are read a chunk at a time
        fig_vecs.update(vectors_for(store, SPACES["pixel_image"], descriptor, PIXEL_MODEL, chunk))
    dim_c = len(next(iter(cap_vecs.values()))) if cap_vecs else 1
    dim_f = len(next(iter(fig_vecs.values()))) if fig_vecs else 1
    c = np.zeros((len(caption_ids), dim_c), np.float32)
    c_ok = np.zeros(len(caption_ids), bool)
    for i, cid in enumerate(caption_ids):
        if cid in cap_vecs:
            c[i], c_ok[i] = cap_vecs[cid], True
    f = np.zeros((len(figure_ids), dim_f), np.float32)
    f_ok = np.zeros(len(figure_ids), bool)
    for i, fid in enumerate(figure_ids):
        if fid in fig_vecs:
            f[i], f_ok[i] = fig_vecs[fid], True
    result = neighbour_caption_agreement(
        c,
        c_ok,
        np.array([fig_pos[r["figure_id"]] for r in rows], np.int64),
        f,
        f_ok,
        k,
        device=device,
    )
    out: dict[str, tuple[float | None, str]] = {}
    n_pool = int(f_ok.sum())
    for i, cid in enumerate(caption_ids):
        if result.why[i]:
            out[cid] = (None, result.why[i])
            continue
        nbrs = [figure_ids[j] for j in result.neighbours[i] if j >= 0]
        detail = (
            f"MiniLM cosine with the captions of the {len(nbrs)} figures nearest by pixel "
            f"statistics (of {n_pool}) {result.neighbour_mean[i]:.3f} minus mean cosine with "
            f"all other captions {result.baseline[i]:.3f}; neighbours: " + ", ".join(nbrs)
        )
        out[cid] = (float(result.value[i]), detail)
    return out
