"""Links between near-duplicate captions or questions, from text vectors.

Captions the embed step already encoded (`emb_text_caption`) with the same model as the
dedup encoder are read back, not encoded again; only the rest go through the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from microvqa_tui.pipeline.dedup.items import EXTERNAL_PREFIX, KIND_TABLE, TEXT_COLUMN, Items, Links
from microvqa_tui.pipeline.dedup.text import TextVectors, text_vectors
from microvqa_tui.pipeline.dedup.vectors import Search, stored_vectors
from microvqa_tui.pipeline.step import model_name
from store import Store

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.config import Settings

STORED_SPACE = {"caption": "text_caption"}  # kind → embedding space the embed step fills


@dataclass
class TextSource:
    """Where a kind's texts come from and how they become vectors."""

    store: Store
    other: Store | None
    kind: str
    settings: Settings
    backend: str  # auto | model | tfidf
    encoder: Any  # None: loaded by `text_vectors` (or TF-IDF)


def text_links(
    src: TextSource, items: Items, thresholds: dict[str, float], search: Search
) -> tuple[Links, TextVectors | None, str]:
    """Links at or above the backend's threshold, the vectors they came from, and how the
    neighbours were searched."""
    texts = read_texts(src, items)
    if len(texts) < 2:
        return Links(), None, ""
    tv = kind_vectors(src, items, texts, search)
    threshold = thresholds["tfidf" if tv.backend == "tfidf" else "text"]
    rows, result = search.topk(tv.vectors, items, search.cfg.neighbours)
    qa, qb, sims = result.pairs(threshold)
    links = Links()
    links.add_allowed(items, src.other is not None, rows[qa], qb, sims, tv.backend)
    return links, tv, f"{result.method}, {result.device}"


def read_texts(src: TextSource, items: Items) -> list[str]:
    table, key = KIND_TABLE[src.kind]
    column = TEXT_COLUMN[src.kind]
    texts: list[str] = [""] * len(items.ids)
    position = {item: i for i, item in enumerate(items.ids)}
    for store, prefix in ((src.store, ""), (src.other, EXTERNAL_PREFIX)):
        if store is None:
            continue
        for row in store.rows(table, columns=[key, column]):
            i = position.get(prefix + row[key])
            if i is not None:
                texts[i] = row[column] or ""
    return texts


def kind_vectors(src: TextSource, items: Items, texts: list[str], search: Search) -> TextVectors:
    """Unit text vectors of every item: stored ones reused, the rest encoded."""
    space = STORED_SPACE.get(src.kind)
    if space is None or src.encoder is None or src.backend == "tfidf":
        return _encode(src, texts, search)
    model = model_name(src.encoder, src.settings, "text")
    vec, have = _stored(src, items, space, model)
    missing = np.nonzero(~have)[0]
    if not have.any():
        return _encode(src, texts, search)
    if len(missing):
        fresh = _encode(src, [texts[i] for i in missing], search)
        if fresh.vectors.shape[1] != vec.shape[1]:  # stored under the name, not the same model
            return _encode(src, texts, search)
        vec[missing] = fresh.vectors
    norms = np.linalg.norm(vec, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return TextVectors((vec / norms).astype(np.float32), "minilm", model)


def _encode(src: TextSource, texts: list[str], search: Search) -> TextVectors:
    return text_vectors(
        texts, src.settings, backend=src.backend, encoder=src.encoder, progress=search.progress
    )


def _stored(src: TextSource, items: Items, space: str, model: str) -> tuple[np.ndarray, np.ndarray]:
    """Stored vectors of `model` for local and external items (zeros where missing)."""
    vec, have, _ = stored_vectors(src.store, space, items.local_ids, model)
    if src.other is not None:
        ext_ids = [i[len(EXTERNAL_PREFIX) :] for i in items.ids[items.n_local :]]
        vec_o, have_o, _ = stored_vectors(src.other, space, ext_ids, model)
        if vec.shape[1] != vec_o.shape[1]:  # a store without the table: reuse nothing
            return np.zeros((len(items.ids), 0), np.float32), np.zeros(len(items.ids), bool)
        vec, have = np.concatenate([vec, vec_o]), np.concatenate([have, have_o])
    return vec, have
