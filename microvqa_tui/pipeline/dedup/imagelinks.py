"""Links between near-duplicate images: CLIP cosine where vectors are stored, and always the
perceptual hashes of `imagehash.py` (which also cover figures without a vector)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from microvqa_tui.pipeline.dedup import imagehash
from microvqa_tui.pipeline.dedup.items import EXTERNAL_PREFIX, Items, Links, split_id
from microvqa_tui.pipeline.dedup.vectors import Search, stored_vectors
from store import Store

CLIP_SPACE = "clip_image"
HASH_BATCH = 128  # images decoded and hashed per batch (bounded memory)


def clip_vectors(
    store: Store, other: Store | None, items: Items
) -> tuple[np.ndarray, np.ndarray, str, str]:
    """(vectors, has_vector, model, note) over all items; the external store's vectors count
    only when they come from the same model as the local ones."""
    vec, have, model = stored_vectors(store, CLIP_SPACE, items.local_ids)
    if other is None or not have.any():
        return vec, have, model, ""
    ext_ids = [split_id(i)[1] for i in items.ids[items.n_local :]]
    vec_o, have_o, model_o = stored_vectors(other, CLIP_SPACE, ext_ids)
    if have_o.any() and model_o == model:
        return np.concatenate([vec, vec_o]), np.concatenate([have, have_o]), model, ""
    note = "CLIP embeddings missing or from another model in the --against store: images compared by hash only"
    vec = np.concatenate([vec, np.zeros((len(ext_ids), vec.shape[1]), np.float32)])
    return vec, np.concatenate([have, np.zeros(len(ext_ids), bool)]), model, note


def clip_links(
    vec: np.ndarray, have: np.ndarray, items: Items, against: bool, threshold: float, search: Search
) -> tuple[Links, str]:
    """Links among the items that have a CLIP vector; returns (links, search method)."""
    links = Links()
    if have.sum() < 2:
        return links, ""
    sub = np.nonzero(have)[0]
    sub_items = Items(
        [items.ids[i] for i in sub], int((sub < items.n_local).sum()), items.query[sub]
    )
    rows, result = search.topk(vec[sub], sub_items, search.cfg.neighbours)
    qa, qb, sims = result.pairs(threshold)
    links.add_allowed(items, against, sub[rows[qa]], sub[qb], sims, "clip")
    return links, f"{result.method}, {result.device}"


def hash_links(
    table: imagehash.HashTable, items: Items, against: bool, threshold: float, search: Search
) -> tuple[Links, str]:
    """Links from perceptual hashes (best window pair per image pair); returns (links, device)."""
    links = Links()
    whole_codes, whole_owner = table.whole()
    query_mask = items.query[whole_owner]
    if not (len(whole_codes) and query_mask.any() and len(table.codes) > 1):
        return links, ""
    # ±1 codes: cosine = dot / 128. The (73× larger) window base stays int8 and is
    # widened block by block, so memory is ~9 kB per image rather than ~37 kB.
    result = search.exact(
        imagehash.to_signed(whole_codes[query_mask]) / imagehash.HASH_BITS,
        np.where(table.codes, 1, -1).astype(np.int8),
        search.cfg.hash_neighbours,
        whole_owner[query_mask],
        table.owner,
        normalize=False,
    )
    qa, qb, sims = result.pairs(imagehash.cosine_threshold(threshold) - 1e-6)
    a, b = whole_owner[query_mask][qa], table.owner[qb]
    agree = imagehash.similarity_from_dot(sims)
    keep = items.allowed(a, b, against)
    # One link per image pair (several windows of one image may match).
    best: dict[tuple[int, int], float] = {}
    for x, y, s in zip(a[keep], b[keep], agree[keep], strict=True):
        pair = (min(int(x), int(y)), max(int(x), int(y)))
        best[pair] = max(best.get(pair, 0.0), float(s))
    if best:
        pa_, pb_ = zip(*best.keys(), strict=True)
        links.add(np.array(pa_), np.array(pb_), np.array(list(best.values())), "phash")
    return links, result.device


def hash_items(
    store: Store, other: Store | None, items: Items, search: Search
) -> imagehash.HashTable:
    """Hash every item's image, local store then external store, in item order."""
    tables, sizes = [], []
    search.progress.start("hashing images", len(items.ids))
    for src_store, prefix in ((store, ""), (other, EXTERNAL_PREFIX)):
        if src_store is None:
            continue
        wanted = [
            i[len(prefix) :] for i in items.ids if i.startswith(EXTERNAL_PREFIX) == bool(prefix)
        ]
        tables.append(hash_store_images(src_store, wanted, search))
        sizes.append(len(wanted))
    return imagehash.concat_tables(tables, sizes)


def hash_store_images(store: Store, ids: list[str], search: Search) -> imagehash.HashTable:
    """Hash the figures `ids` (in that order) streaming the store in batches."""
    position = {item: i for i, item in enumerate(ids)}
    tables: list[imagehash.HashTable] = []
    pending: list[tuple[int, Any]] = []
    columns = ["figure_id", "image_bytes", "image_path"]
    for batch in store.batches("figures", columns, batch_size=HASH_BATCH):
        if search.cancel is not None:
            search.cancel.check()
        for fid, blob, path in zip(*(batch.column(c).to_pylist() for c in columns), strict=True):
            i = position.get(fid)
            if i is not None:
                pending.append(
                    (i, blob if blob else (path if path and Path(path).is_file() else None))
                )
        if len(pending) >= HASH_BATCH:
            tables.append(_hash_pending(pending, search))
            pending = []
    if pending:
        tables.append(_hash_pending(pending, search))
    return _merge_hashes(tables, len(ids))


def _hash_pending(pending: list[tuple[int, Any]], search: Search) -> imagehash.HashTable:
    idx = [i for i, _ in pending]
    table = imagehash.hash_images(
        [s for _, s in pending], crops=search.cfg.crop_windows, on_done=search.progress.advance
    )
    # Map batch positions back to global image indices.
    table.owner = np.asarray(idx, np.int64)[table.owner] if len(table.owner) else table.owner
    table.failed = [idx[i] for i in table.failed]
    return table


def _merge_hashes(tables: list[imagehash.HashTable], n: int) -> imagehash.HashTable:
    """One table for `n` images, rows ordered by owner so per-image slices are contiguous;
    images with no row (unreadable or missing) are listed as failed."""
    if not tables:
        return imagehash.HashTable(
            np.zeros((0, imagehash.HASH_BITS), bool),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            list(range(n)),
        )
    codes = np.concatenate([t.codes for t in tables])
    owner = np.concatenate([t.owner for t in tables])
    window = np.concatenate([t.window for t in tables])
    order = np.lexsort((window, owner))
    seen = set(owner.tolist())
    failed = sorted({f for t in tables for f in t.failed} | {i for i in range(n) if i not in seen})
    return imagehash.HashTable(codes[order], owner[order], window[order], failed)
