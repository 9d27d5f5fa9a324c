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

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from microvqa_tui.config.signals import EMBED_SPACES, EmbedSettings
from microvqa_tui.engines.base import Engine
from microvqa_tui.pipeline.batchstep import BatchStep, Pending, run_batch_step
from microvqa_tui.pipeline.step import load_model, model_name, to_jsonable
from microvqa_tui.progress import CancelToken, ProgressReporter
from store import Store
from store.queries import quote

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.config import Settings


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

__all__ = ["SPACES", "EmbedSettings", "EmbedStep", "load_role", "run_embed"]


def load_role(role: str, settings: Settings, models: Any = None) -> tuple[Any, str]:
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
    return store.ids("emb_" + space, f"model = {quote(model)}")


def stored_vectors(
    store: Store, space: str, ids: Sequence[str], model: str
) -> dict[str, np.ndarray]:
    """The vectors of `model` in `space` for those of `ids` that have one."""
    if not ids or "emb_" + space not in store.table_names():
        return {}
    columns = ["item_id", "vector", "model"]
    rows = store.get_many("emb_" + space, list(dict.fromkeys(ids)), columns)
    return {
        r["item_id"]: np.asarray(r["vector"], dtype=np.float32) for r in rows if r["model"] == model
    }


def item_inputs(
    store: Store, space: Space, ids: Sequence[str], *, images: bool = True
) -> tuple[list[str], list[Any], list[str]]:
    """(ids, inputs, figure ids) of the items of `space` that exist, in the order of `ids`;
    without `images`, an image's input is None (a worker reads it from a shared store)."""
    if space.table == "figures":
        columns = ["figure_id", "image_bytes", "image_path"] if images else ["figure_id"]
        rows = store.get_many("figures", list(ids), columns)
        by_id = {r["figure_id"]: r for r in rows}
        out_ids, inputs, figures = [], [], []
        for item in ids:
            row = by_id.get(item)
            if row is None:
                continue
            out_ids.append(item)
            inputs.append((row["image_bytes"] or row["image_path"]) if images else None)
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
    vectors = encode_inputs(model, space, inputs)
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


def encode_inputs(model: Any, space: Space, inputs: Sequence[Any]) -> np.ndarray:
    """Unit vectors of the inputs of `space` (NaN rows for undecodable images)."""
    return encode_images(model, inputs) if space.kind == "image" else encode_texts(model, inputs)


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


Key = tuple[str, str]  # (space, item id)


class EmbedStep(BatchStep[Key, dict[str, Any], tuple[str, str, str, Any]]):
    """Items are (space, id); an item carries its input (text, image bytes or path); a
    result is (space, id, figure id, unit vector or None when the image is undecodable)."""

    name = "embed"
    reads = ("figures", "captions", "qas")
    writes = ("emb_*",)
    worker_state = ("loaded",)

    def __init__(self, models: Any = None) -> None:
        self.models = models  # get_<role>(settings) provider; None = the model registry
        self.loaded: dict[str, Any] = {}
        self.model_ids: dict[str, str] = {}  # role -> id, settled by `pending`
        self.shared_store = ""  # the store's path when actors read images from it

    def section(self, settings: Settings) -> EmbedSettings:
        return settings.embed

    def pending(self, store: Any, settings: Settings) -> Pending[Key]:
        engine = settings.engine
        shared = engine.shared_store and engine.kind == "ray"
        self.shared_store = str(store.path) if shared else ""
        spaces = _configured_spaces(settings)
        out: Pending[Key] = Pending(keys=[])
        for space in spaces:
            if space.role not in self.model_ids and space.role not in out.unavailable:
                model_id, why = self._identify(space.role, settings)
                if not model_id:
                    out.unavailable[space.role] = why
                    continue
                self.model_ids[space.role] = out.versions[space.role] = model_id
            if space.role in out.unavailable:
                continue
            model_id = self.model_ids[space.role]
            all_ids = sorted(store.ids(space.table))
            done = embedded_ids(store, space.name, model_id)
            todo = [i for i in all_ids if i not in done]
            out.counts[space.name] = SpaceCounts(model_id, len(all_ids), len(all_ids) - len(todo))
            out.keys.extend((space.name, i) for i in todo)
        names = ", ".join(out.counts)
        out.description = f"embed {names} · " + ", ".join(sorted(set(out.versions.values())))
        return out

    def _identify(self, role: str, settings: Settings) -> tuple[str, str]:
        """(model id, "") or ("", why missing) — from the registry without loading the model
        (a Ray driver needs no model), or from the injected provider's model."""
        if self.models is None and role != "pixel":
            from microvqa_tui.errors import ModelMissingError
            from microvqa_tui.models import registry

            try:
                return registry.stored_model_id(role, settings), ""
            except ModelMissingError as exc:
                return "", str(exc)
        model, why = load_role(role, settings, self.models)
        if model is None:
            return "", why
        self.loaded[role] = model
        return model_name(model, settings, role), ""

    def read(self, store: Any, keys: Sequence[Key]) -> list[dict[str, Any]]:
        by_space: dict[str, list[str]] = {}
        for space, item in keys:
            by_space.setdefault(space, []).append(item)
        items = []
        for name, ids in by_space.items():
            kept, inputs, figures = item_inputs(
                store, SPACES[name], ids, images=not self.shared_store
            )
            items += [
                {"space": name, "id": i, "figure_id": f, "input": x}
                for i, x, f in zip(kept, inputs, figures, strict=True)
            ]
        return items

    def load(self, settings: Settings) -> None:
        """The models of the roles `pending` found (on a worker: the same ids, or an error)."""
        from microvqa_tui.errors import ModelMissingError, PipelineError

        for role, model_id in self.model_ids.items():
            if role in self.loaded:
                continue
            model, why = load_role(role, settings, self.models)
            if model is None:
                raise ModelMissingError(f"embed worker: {why}")
            if model_name(model, settings, role) != model_id:
                found = model_name(model, settings, role)
                raise PipelineError(f"embed worker loaded {role} model {found}, not {model_id}")
            self.loaded[role] = model

    def process(self, items: Sequence[dict[str, Any]]) -> list[tuple[str, str, str, Any]]:
        if self.shared_store:
            self._read_images(items)
        results = []
        for name in dict.fromkeys(item["space"] for item in items):
            part = [item for item in items if item["space"] == name]
            space = SPACES[name]
            vectors = encode_inputs(self.loaded[space.role], space, [p["input"] for p in part])
            ok = np.isfinite(vectors).all(axis=1)
            results += [
                (name, p["id"], p["figure_id"], vectors[k] if ok[k] else None)
                for k, p in enumerate(part)
            ]
        return results

    def _read_images(self, items: Sequence[dict[str, Any]]) -> None:
        """The image bytes of items shipped without them, read from the shared store (the
        one store access of a worker; a figure gone since gives an undecodable input)."""
        from store import open_store

        if "store" not in self.loaded:
            self.loaded["store"] = open_store(self.shared_store, create=False)
        for name in dict.fromkeys(i["space"] for i in items if i["input"] is None):
            part = [i for i in items if i["space"] == name and i["input"] is None]
            kept, inputs, _ = item_inputs(
                self.loaded["store"], SPACES[name], [i["id"] for i in part]
            )
            found = dict(zip(kept, inputs, strict=True))
            for item in part:
                item["input"] = found.get(item["id"], b"")

    def write(self, store: Any, results: Sequence[tuple[str, str, str, Any]]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name in dict.fromkeys(r[0] for r in results):
            part = [r for r in results if r[0] == name]
            good = [r for r in part if r[3] is not None]
            if good:
                model_id = self.model_ids[SPACES[name].role]
                vectors = np.stack([r[3] for r in good])
                store.write_embeddings(
                    name, [r[1] for r in good], vectors, model_id, [r[2] for r in good]
                )
            counts[f"{name}.embedded"] = len(good)
            counts[f"{name}.failed"] = len(part) - len(good)
        return counts

    def report(
        self, run_id: str, pending: Pending[Key], counts: Counter[str], seconds: float
    ) -> EmbedReport:
        spaces = {}
        for name, base in pending.counts.items():
            spaces[name] = replace(
                base, embedded=counts[f"{name}.embedded"], failed=counts[f"{name}.failed"]
            )
        return EmbedReport(run_id, spaces, dict(pending.unavailable), seconds)

    def run_counts(self, report: EmbedReport) -> dict[str, Any]:
        """Per space its counts, and the unavailable roles (the run row's shape)."""
        counts = {k: to_jsonable(v) for k, v in report.spaces.items()}
        return {**counts, "unavailable": dict(report.unavailable)}


def _configured_spaces(settings: Settings) -> list[Space]:
    cfg = settings.embed
    unknown = [s for s in cfg.spaces if s not in SPACES]
    if unknown:
        from microvqa_tui.errors import ConfigError

        raise ConfigError(f"unknown embedding spaces {unknown}", hint=f"known: {', '.join(SPACES)}")
    return [SPACES[name] for name in cfg.spaces]


def run_embed(
    store: Store,
    settings: Settings,
    *,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
    models: Any = None,
    engine: Engine | None = None,
) -> EmbedReport:
    """Fill every configured embedding space with the vectors it lacks.

    `models` provides `get_text(settings)` / `get_clip(settings)` (default: the registry);
    the `pixel` descriptor is built in. `engine` defaults to the one in `settings.engine`.
    """
    return run_batch_step(
        EmbedStep(models),
        store,
        settings,
        engine=engine,
        progress=progress,
        cancel=cancel,
    )
