"""Embed step: MiniLM text vectors of captions and QAs, CLIP vectors of figures, captions
and QAs, one table per space (`emb_<space>`, see `Store.write_embeddings`).

Spaces and their items:

    text_caption  caption_id  MiniLM of the caption text
    text_qa       qa_id       MiniLM of "question answer"
    clip_image    figure_id   CLIP image tower
    clip_caption  caption_id  CLIP text tower of the caption
    clip_qa       qa_id       CLIP text tower of "question answer"
    pixel_image   figure_id   model-free colour/stain/texture statistics of the image
                              (`models.pixel`, not a CLIP substitute: no semantics)

Resumable: only items without a vector of the current model in that space are embedded;
batches are written as they are done. A missing model (CLIP is optional) is reported under
`unavailable` with how to get it, and the other spaces are still embedded. The pixel
descriptor needs no model and is always available. An image that cannot be decoded is
counted under `failed` and gets no vector.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from microvqa_tui.common.runs import record_run
from microvqa_tui.config.signals import EMBED_SPACES, EmbedSettings, embed_settings
from microvqa_tui.pipeline.step import batched, load_model, model_name, to_jsonable
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter
from store import Store
from store.queries import by_keys, column_values, quote


@dataclass(frozen=True)
class Space:
    name: str
    role: str  # text | clip | pixel
    table: str  # figures | captions | qas
    kind: str  # text | image


SPACES: dict[str, Space] = {
    s.name: s
    for s in (
        Space("text_caption", "text", "captions", "text"),
        Space("text_qa", "text", "qas", "text"),
        Space("clip_image", "clip", "figures", "image"),
        Space("clip_caption", "clip", "captions", "text"),
        Space("clip_qa", "clip", "qas", "text"),
        Space("pixel_image", "pixel", "figures", "image"),
    )
}
assert tuple(SPACES) == EMBED_SPACES

__all__ = ["SPACES", "EmbedSettings", "embed_settings", "load_role", "run_embed"]


def load_role(role: str, settings: Any, models: Any = None) -> tuple[Any, str]:
    """(model, "") or (None, why) for an embedding role; `pixel` is built in (no model)."""
    if role == "pixel":
        from microvqa_tui.models.pixel import PixelDescriptor

        return PixelDescriptor(), ""
    return load_model(role, settings, models)


def qa_text(question: str, answer: str) -> str:
    """The text embedded for a QA."""
    return f"{question.strip()} {answer.strip()}".strip()


# ----------------------------------------------------------------------------- vectors
def encode_texts(model: Any, texts: Sequence[str]) -> np.ndarray:
    """Unit vectors of `texts` with a text encoder (sentence-transformers or CLIP text tower)."""
    fn = getattr(model, "encode_texts", None) or model.encode
    vectors = np.asarray(fn(list(texts)), dtype=np.float32)
    return unit(vectors)


def encode_images(model: Any, images: Sequence[Any]) -> np.ndarray:
    """Unit vectors of images (bytes or paths); an undecodable image gives a NaN row."""
    try:
        vectors = model.encode_images(list(images), on_error="nan")
    except TypeError:  # an encoder without on_error
        vectors = model.encode_images(list(images))
    return unit(np.asarray(vectors, dtype=np.float32))


def unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, vectors / norms, np.nan).astype(np.float32)


def embedded_ids(store: Store, space: str, model: str) -> set[str]:
    """Items that have a vector of `model` in `space`."""
    if "emb_" + space not in store.table_names():
        return set()
    tbl = store.embedding_table(space)
    return column_values(tbl, "item_id", f"model = {quote(model)}")


def stored_vectors(
    store: Store, space: str, ids: Sequence[str], model: str
) -> dict[str, np.ndarray]:
    """The vectors of `model` in `space` for those of `ids` that have one."""
    if not ids or "emb_" + space not in store.table_names():
        return {}
    tbl = store.embedding_table(space)
    rows = by_keys(tbl, "item_id", list(dict.fromkeys(ids)), ["item_id", "vector", "model"])
    return {
        r["item_id"]: np.asarray(r["vector"], dtype=np.float32) for r in rows if r["model"] == model
    }


def item_inputs(
    store: Store, space: Space, ids: Sequence[str]
) -> tuple[list[str], list[Any], list[str]]:
    """(ids, inputs, figure ids) of the items of `space` that exist, in the order of `ids`."""
    if space.table == "figures":
        rows = store.get_many("figures", list(ids), ["figure_id", "image_bytes", "image_path"])
        by_id = {r["figure_id"]: r for r in rows}
        out_ids, inputs, figures = [], [], []
        for item in ids:
            row = by_id.get(item)
            if row is None:
                continue
            out_ids.append(item)
            inputs.append(row["image_bytes"] if row["image_bytes"] else row["image_path"])
            figures.append(item)
        return out_ids, inputs, figures
    if space.table == "captions":
        rows = store.get_many("captions", list(ids), ["caption_id", "figure_id", "text"])
        by_id = {r["caption_id"]: r for r in rows}
        kept = [i for i in ids if i in by_id]
        return kept, [by_id[i]["text"] or "" for i in kept], [by_id[i]["figure_id"] for i in kept]
    rows = store.get_many("qas", list(ids), ["qa_id", "figure_id", "question", "answer"])
    by_id = {r["qa_id"]: r for r in rows}
    kept = [i for i in ids if i in by_id]
    texts = [qa_text(by_id[i]["question"], by_id[i]["answer"]) for i in kept]
    return kept, texts, [by_id[i]["figure_id"] for i in kept]


def embed_items(
    store: Store, space: Space, model: Any, model_id: str, ids: Sequence[str]
) -> tuple[dict[str, np.ndarray], int]:
    """Encode and write the vectors of `ids` in `space`; ({id: vector}, failed count)."""
    kept, inputs, figures = item_inputs(store, space, ids)
    if not kept:
        return {}, 0
    vectors = encode_images(model, inputs) if space.kind == "image" else encode_texts(model, inputs)
    ok = np.isfinite(vectors).all(axis=1)
    good = np.flatnonzero(ok)
    if good.size:
        store.write_embeddings(
            space.name,
            [kept[i] for i in good],
            vectors[good],
            model_id,
            [figures[i] for i in good],
        )
    return {kept[i]: vectors[i] for i in good}, int((~ok).sum())


def vectors_for(
    store: Store, space: Space, model: Any, model_id: str, ids: Sequence[str]
) -> dict[str, np.ndarray]:
    """Stored vectors of `ids`, computing (and storing) those that are missing."""
    have = stored_vectors(store, space.name, ids, model_id)
    missing = [i for i in dict.fromkeys(ids) if i not in have]
    if missing:
        new, _ = embed_items(store, space, model, model_id, missing)
        have.update(new)
    return have


# ----------------------------------------------------------------------------- the step
@dataclass
class SpaceCounts:
    model: str = ""
    items: int = 0
    already: int = 0
    embedded: int = 0
    failed: int = 0  # undecodable images


@dataclass
class EmbedReport:
    run_id: str = ""
    spaces: dict[str, SpaceCounts] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def run_embed(
    store: Store,
    settings: Any,
    *,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
    models: Any = None,
) -> EmbedReport:
    """Fill every configured embedding space with the vectors it lacks.

    `models` provides `get_text(settings)` / `get_clip(settings)` (default: the registry);
    the `pixel` descriptor is built in.
    """
    progress = progress or NullProgress()
    cancel = cancel or CancelToken()
    cfg = embed_settings(settings)
    unknown = [s for s in cfg.spaces if s not in SPACES]
    if unknown:
        from microvqa_tui.errors import ConfigError

        raise ConfigError(f"unknown embedding spaces {unknown}", hint=f"known: {', '.join(SPACES)}")
    report = EmbedReport()
    loaded: dict[str, tuple[Any, str]] = {}
    clock = time.perf_counter()
    with record_run(store, "embed", config=cfg.model_dump(mode="json")) as run:
        report.run_id = run.run_id
        for name in cfg.spaces:
            space = SPACES[name]
            if space.role not in loaded:
                loaded[space.role] = load_role(space.role, settings, models)
                if loaded[space.role][0] is None:
                    report.unavailable[space.role] = loaded[space.role][1]
                    progress.log(f"embed: {space.role} model missing — {loaded[space.role][1]}")
            model, _ = loaded[space.role]
            if model is None:
                continue
            model_id = model_name(model, settings, space.role)
            counts = report.spaces[name] = SpaceCounts(model=model_id)
            _embed_space(store, space, model, model_id, cfg.batch_size, counts, progress, cancel)
            run.models[space.role] = model_id
        run.counts = {k: to_jsonable(v) for k, v in report.spaces.items()}
        run.counts["unavailable"] = dict(report.unavailable)
        report.seconds = time.perf_counter() - clock
    return report


def _embed_space(
    store: Store,
    space: Space,
    model: Any,
    model_id: str,
    batch_size: int,
    counts: SpaceCounts,
    progress: ProgressReporter,
    cancel: CancelToken,
) -> None:
    all_ids = sorted(store.ids(space.table))
    done = embedded_ids(store, space.name, model_id)
    todo = [i for i in all_ids if i not in done]
    counts.items, counts.already = len(all_ids), len(all_ids) - len(todo)
    progress.start(f"embed {space.name} · {model_id}", len(todo))
    for batch in batched(todo, batch_size):
        cancel.check()
        new, failed = embed_items(store, space, model, model_id, batch)
        counts.embedded += len(new)
        counts.failed += failed
        progress.advance(len(batch))
