"""Which caption belongs to an item (a QA or an MCQ): one rule for every step.

The rule: the item's own caption (a QA's `caption_id`; an MCQ's through its QA), else the
longest caption of its figure (ties by caption id, so the choice never depends on storage
order). Captions in `rejected` (duplicate captions a person or a policy rejected) are never
chosen; an item whose every candidate caption is rejected maps to None, so the export can
drop it. An item without any caption is absent from the result.

Signals use `fallback=False`: their caption embeddings are keyed by the QA's own caption, so
a figure caption standing in for a missing one would make NLI and the similarity signals
judge different texts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from store import Store
from store.queries import in_list

CHUNK = 500  # ids per `IN (...)` filter


@dataclass(frozen=True)
class ItemCaption:
    caption_id: str
    text: str


def item_captions(
    store: Store,
    items: Iterable[dict[str, Any]],
    *,
    key: str,
    rejected: Collection[str] = (),
    fallback: bool = True,
) -> dict[str, ItemCaption | None]:
    """The caption of each item, by `item[key]` (see the module's rule)."""
    items = list(items)
    own = _own_caption_ids(store, items, key)
    by_id = _captions_by_id(store, sorted({c for c in own.values() if c}))
    result: dict[str, ItemCaption | None] = {}
    need_figure: list[dict[str, Any]] = []
    for item in items:
        caption_id = own.get(item[key], "")
        if caption_id and caption_id in rejected:
            result[item[key]] = None
        elif caption_id in by_id:
            result[item[key]] = by_id[caption_id]
        elif fallback:
            need_figure.append(item)
    if need_figure:
        by_figure = _captions_by_figure(store, sorted({i["figure_id"] for i in need_figure}))
        for item in need_figure:
            candidates = by_figure.get(item["figure_id"], [])
            usable = [c for c in candidates if c.caption_id not in rejected]
            if usable:
                result[item[key]] = min(usable, key=lambda c: (-len(c.text), c.caption_id))
            elif candidates:
                result[item[key]] = None
    return result


def caption_texts(
    store: Store, items: Iterable[dict[str, Any]], *, key: str, fallback: bool = True
) -> dict[str, str]:
    """`item[key]` -> caption text ("" when the item has none)."""
    items = list(items)
    found = item_captions(store, items, key=key, fallback=fallback)
    return {item[key]: (c.text if (c := found.get(item[key])) else "") for item in items}


def _own_caption_ids(store: Store, items: list[dict[str, Any]], key: str) -> dict[str, str]:
    """Item id -> the caption id it names itself, or through its QA (MCQs)."""
    own: dict[str, str] = {}
    via_qa = [i for i in items if "caption_id" not in i and i.get("qa_id")]
    qa_caption = {
        r["qa_id"]: r["caption_id"] or ""
        for r in store.get_many(
            "qas", sorted({i["qa_id"] for i in via_qa}), ["qa_id", "caption_id"]
        )
    }
    for item in items:
        if "caption_id" in item:
            own[item[key]] = item["caption_id"] or ""
        else:
            own[item[key]] = qa_caption.get(item.get("qa_id") or "", "")
    return own


def _captions_by_id(store: Store, caption_ids: list[str]) -> dict[str, ItemCaption]:
    rows = store.get_many("captions", caption_ids, ["caption_id", "text"])
    return {r["caption_id"]: ItemCaption(r["caption_id"], r["text"] or "") for r in rows}


def _captions_by_figure(store: Store, figure_ids: list[str]) -> dict[str, list[ItemCaption]]:
    out: dict[str, list[ItemCaption]] = {}
    for start in range(0, len(figure_ids), CHUNK):
        chunk = figure_ids[start : start + CHUNK]
        for r in store.rows(
            "captions", in_list("figure_id", chunk), ["figure_id", "caption_id", "text"]
        ):
            out.setdefault(r["figure_id"], []).append(ItemCaption(r["caption_id"], r["text"] or ""))
    return out
