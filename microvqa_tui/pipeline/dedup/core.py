"""Find near-duplicate images, captions and questions and store them as groups.

Nothing is deleted or changed here: each group is written to `dup_groups` with its members,
their similarity to the proposed keeper, and the links that formed it. Decisions (keep the
keeper and reject the others, or "not duplicates") are taken later by a person or an explicit
policy (`decisions.py`).

Items per kind: image → figures (figure_id), caption → captions (caption_id),
question → mcqs (mcq_id).

Signals:
- image: CLIP cosine over `emb_clip_image` when that table exists (figures without a vector
  are still covered by the hashes), and always the perceptual hashes of `imagehash.py`.
- caption/question: text embeddings (MiniLM via models.registry.get_text), or character
  n-gram TF-IDF when the text model is missing — reported in `KindReport.note`.

Links at or above the threshold are joined with union-find; every connected set of two or
more items is a group. Links between members of a group someone dismissed ("not duplicates")
are not made again.

Modes: a full run over the store; `since_run` (only items created after that run started are
queried, against everything); `against` another store (only pairs local ↔ other are
looked for; the other store's members appear as `ext:<id>`, and one of them is the keeper:
it is already in the reference set).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from microvqa_tui.common.runs import record_run
from microvqa_tui.config.dedup import DedupSettings, dedup_settings
from microvqa_tui.errors import ModelMissingError, PipelineError
from microvqa_tui.pipeline.dedup import imagehash
from microvqa_tui.pipeline.dedup.keeper import choose_keeper, quality_keys
from microvqa_tui.pipeline.dedup.knn import (
    AnnParams,
    Neighbours,
    all_pairs_topk,
    exact_topk,
    pick_device,
)
from microvqa_tui.pipeline.dedup.storeio import iter_batches, read_columns
from microvqa_tui.pipeline.dedup.text import TextVectors, load_text_encoder, text_vectors
from microvqa_tui.pipeline.dedup.unionfind import UnionFind
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter
from microvqa_tui.vocabulary import DUP_DISMISSED, DUP_KINDS, DUP_PENDING, DUP_SUPERSEDED
from store import Store, text_id
from store.queries import quote
from store.schema import utcnow

EXTERNAL_PREFIX = "ext:"
CLIP_SPACE = "clip_image"
STEP = "dedup"

KIND_TABLE = {
    "image": ("figures", "figure_id"),
    "caption": ("captions", "caption_id"),
    "question": ("mcqs", "mcq_id"),
}
TEXT_COLUMN = {"caption": "text", "question": "question"}
_THRESHOLD_OF = {"clip": "clip", "phash": "hash", "minilm": "text", "tfidf": "tfidf"}
TIME_COLUMN = {"image": "ingested_at", "caption": "created_at", "question": "created_at"}


@dataclass
class KindReport:
    kind: str
    items: int = 0
    queried: int = 0
    external_items: int = 0
    links: int = 0
    groups: int = 0
    new_groups: int = 0
    grouped_items: int = 0
    superseded: int = 0
    size_histogram: dict[str, int] = field(default_factory=dict)
    largest: list[dict[str, Any]] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)
    backend: str = ""
    model: str = ""
    note: str = ""
    failed_images: int = 0
    seconds: float = 0.0


@dataclass
class DedupReport:
    run_id: str
    kinds: dict[str, KindReport]
    against: str = ""
    since_run: str = ""
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "against": self.against,
            "since_run": self.since_run,
            "device": self.device,
            "kinds": {k: asdict(v) for k, v in self.kinds.items()},
            "notes": list(dict.fromkeys(v.note for v in self.kinds.values() if v.note)),
        }


# ---------------------------------------------------------------------------- reading
def _run_started(store: Store, run_id: str) -> datetime:
    row = store.get("runs", run_id, columns=["run_id", "started_at"])
    if row is None:
        raise PipelineError(
            f"no run {run_id!r} in the store", hint="`microvqa stats` lists recent runs"
        )
    return row["started_at"]


@dataclass
class _Items:
    """Items of one kind from the local store (first `n_local`) and the external store."""

    ids: list[str]  # external ones carry EXTERNAL_PREFIX
    n_local: int
    query: np.ndarray  # bool: which items are searched for neighbours


# Generated spatial items share templated stems ("Which rotation maps view 1 onto view 2?")
# by design and differ in their images and answers; the same item twice is already one row
# (content-addressed ids), so question-text similarity says nothing about them. Their images
# still take part in image dedup.
TEMPLATED_ORIGINS = ("spatial",)


def _load_items(store: Store, other: Store | None, kind: str, since: datetime | None) -> _Items:
    table, key = KIND_TABLE[kind]
    columns = [key, TIME_COLUMN[kind]] + (["origin"] if kind == "question" else [])
    local = read_columns(store, table, columns)
    if kind == "question":
        chosen = [i for i, o in enumerate(local["origin"]) if o not in TEMPLATED_ORIGINS]
        local = {name: [values[i] for i in chosen] for name, values in local.items()}
    order = np.argsort(local[key], kind="stable")
    ids = [local[key][i] for i in order]
    times = [local[TIME_COLUMN[kind]][i] for i in order]
    query = np.ones(len(ids), bool)
    if since is not None:
        query = np.array(
            [t is not None and t.replace(tzinfo=None) > since.replace(tzinfo=None) for t in times],
            bool,
        )
    n_local = len(ids)
    if other is not None:
        ext = sorted(other.ids(table))
        ids = ids + [EXTERNAL_PREFIX + i for i in ext]
        query = np.concatenate([query, np.zeros(len(ext), bool)])
    return _Items(ids, n_local, query)


def _split_id(item: str) -> tuple[bool, str]:
    if item.startswith(EXTERNAL_PREFIX):
        return True, item[len(EXTERNAL_PREFIX) :]
    return False, item


# ---------------------------------------------------------------------------- links
@dataclass
class _Links:
    a: list[int] = field(default_factory=list)
    b: list[int] = field(default_factory=list)
    sim: list[float] = field(default_factory=list)
    method: list[str] = field(default_factory=list)

    def add(self, a: np.ndarray, b: np.ndarray, sim: np.ndarray, method: str) -> None:
        self.a.extend(int(x) for x in a)
        self.b.extend(int(x) for x in b)
        self.sim.extend(float(x) for x in sim)
        self.method.extend([method] * len(a))

    def __len__(self) -> int:
        return len(self.a)


def _allowed_pair(items: _Items, against: bool):
    """Which (a, b) pairs count: in --against mode only local ↔ external."""
    n_local = items.n_local

    def ok(a: int, b: int) -> bool:
        if a == b:
            return False
        if against:
            return (a < n_local) != (b < n_local)
        return True

    return ok


def _search(
    vectors: np.ndarray,
    items: _Items,
    k: int,
    cfg: DedupSettings,
    device: str,
    workdir: Path,
    progress: ProgressReporter,
    cancel: CancelToken | None,
) -> tuple[np.ndarray, Neighbours]:
    """Top-k neighbours of the queried items among all items: all-pairs when every item is
    queried (exact or indexed), else exact queries-against-all. Returns (query rows, result)."""
    rows = np.nonzero(items.query)[0]
    if len(rows) == len(vectors):
        result = all_pairs_topk(
            vectors,
            k,
            method=cfg.method,
            device=device,
            ann=AnnParams(index_type=cfg.ann_index),
            ann_min_rows=cfg.ann_min_rows,
            workdir=workdir,
            memory_mb=cfg.memory_mb,
            progress=progress,
            cancel=cancel,
        )
        return rows, result
    groups = np.arange(len(vectors))
    result = exact_topk(
        vectors[rows],
        vectors,
        k,
        query_groups=groups[rows],
        base_groups=groups,
        device=device,
        memory_mb=cfg.memory_mb,
        progress=progress,
        cancel=cancel,
    )
    return rows, result


def _embedding_vectors(
    store: Store, space: str, ids: list[str]
) -> tuple[np.ndarray, np.ndarray, str]:
    """(vectors, has_vector mask, model) for `ids` from the store's `emb_<space>` table."""
    name = "emb_" + space
    if name not in store.table_names():
        return np.zeros((len(ids), 0), np.float32), np.zeros(len(ids), bool), ""
    tbl = store.embedding_table(space)
    position = {item: i for i, item in enumerate(ids)}
    dim = tbl.schema.field("vector").type.list_size
    out = np.zeros((len(ids), dim), np.float32)
    have = np.zeros(len(ids), bool)
    models: Counter[str] = Counter()
    if tbl.count_rows():
        for batch in (
            tbl.search().select(["item_id", "vector", "model"]).limit(None).to_batches(8192)
        ):
            item_ids = batch.column("item_id").to_pylist()
            vecs = np.asarray(
                batch.column("vector").flatten().to_numpy(zero_copy_only=False), np.float32
            ).reshape(-1, dim)
            for row, item in enumerate(item_ids):
                i = position.get(item)
                if i is not None:
                    out[i] = vecs[row]
                    have[i] = True
            models.update(batch.column("model").to_pylist())
    return out, have, (models.most_common(1)[0][0] if models else "")


def _image_links(
    store: Store,
    other: Store | None,
    items: _Items,
    cfg: DedupSettings,
    thresholds: dict[str, float],
    device: str,
    report: KindReport,
    progress: ProgressReporter,
    cancel: CancelToken | None,
) -> tuple[_Links, imagehash.HashTable]:
    links = _Links()
    ok = _allowed_pair(items, other is not None)
    # 1. CLIP embeddings, where stored (both stores, same model).
    local_ids = items.ids[: items.n_local]
    vec, have, model = _embedding_vectors(store, CLIP_SPACE, local_ids)
    if other is not None and have.any():
        ext_ids = [_split_id(i)[1] for i in items.ids[items.n_local :]]
        vec_o, have_o, model_o = _embedding_vectors(other, CLIP_SPACE, ext_ids)
        if have_o.any() and model_o == model:
            vec, have = np.concatenate([vec, vec_o]), np.concatenate([have, have_o])
        else:
            report.note = (report.note + "; " if report.note else "") + (
                "CLIP embeddings missing or from another model in the --against store: images compared by hash only"
            )
            vec = np.concatenate([vec, np.zeros((len(ext_ids), vec.shape[1]), np.float32)])
            have = np.concatenate([have, np.zeros(len(ext_ids), bool)])
    if have.sum() >= 2:
        sub = np.nonzero(have)[0]
        sub_items = _Items(
            [items.ids[i] for i in sub], int((sub < items.n_local).sum()), items.query[sub]
        )
        rows, result = _search(
            vec[sub], sub_items, cfg.neighbours, cfg, device, store.path, progress, cancel
        )
        qa, qb, sims = result.pairs(thresholds["clip"])
        a, b = sub[rows[qa]], sub[qb]
        keep = (
            np.array([ok(x, y) for x, y in zip(a, b, strict=True)], bool)
            if len(a)
            else np.zeros(0, bool)
        )
        links.add(a[keep], b[keep], sims[keep], "clip")
        report.methods.append(
            f"clip ({model or 'stored embeddings'}, {result.method}, {result.device})"
        )
        report.model = model
    # 2. Perceptual hashes, always.
    tables, sizes = [], []
    progress.start("hashing images", len(items.ids))
    for src_store, prefix in ((store, ""), (other, EXTERNAL_PREFIX)):
        if src_store is None:
            continue
        wanted = [
            i[len(prefix) :] for i in items.ids if (i.startswith(EXTERNAL_PREFIX) == bool(prefix))
        ]
        got = _hash_store_images(src_store, wanted, cfg, progress, cancel)
        tables.append(got)
        sizes.append(len(wanted))
    table = imagehash.concat_tables(tables, sizes)
    report.failed_images = len(table.failed)
    whole_codes, whole_owner = table.whole()
    query_mask = items.query[whole_owner]
    if len(whole_codes) and query_mask.any() and len(table.codes) > 1:
        # ±1 codes: cosine = dot / 128. The (73× larger) window base stays int8 and is
        # widened block by block, so memory is ~9 kB per image rather than ~37 kB.
        result = exact_topk(
            imagehash.to_signed(whole_codes[query_mask]) / imagehash.HASH_BITS,
            np.where(table.codes, 1, -1).astype(np.int8),
            cfg.hash_neighbours,
            query_groups=whole_owner[query_mask],
            base_groups=table.owner,
            device=device,
            memory_mb=cfg.memory_mb,
            normalize=False,
            progress=progress,
            cancel=cancel,
        )
        cos = imagehash.cosine_threshold(thresholds["hash"])
        qa, qb, sims = result.pairs(cos - 1e-6)
        a = whole_owner[query_mask][qa]
        b = table.owner[qb]
        agree = imagehash.similarity_from_dot(sims)
        keep = (
            np.array([ok(x, y) for x, y in zip(a, b, strict=True)], bool)
            if len(a)
            else np.zeros(0, bool)
        )
        # One link per image pair (several windows of one image may match).
        best: dict[tuple[int, int], float] = {}
        for x, y, s in zip(a[keep], b[keep], agree[keep], strict=True):
            pair = (min(int(x), int(y)), max(int(x), int(y)))
            best[pair] = max(best.get(pair, 0.0), float(s))
        if best:
            pa_, pb_ = zip(*best.keys(), strict=True)
            links.add(np.array(pa_), np.array(pb_), np.array(list(best.values())), "phash")
        report.methods.append(
            f"phash ({imagehash.HASH_VERSION}, {imagehash.N_WINDOWS if cfg.crop_windows else 1} windows, exact, {result.device})"
        )
    return links, table


def _hash_store_images(
    store: Store,
    ids: list[str],
    cfg: DedupSettings,
    progress: ProgressReporter,
    cancel: CancelToken | None,
) -> imagehash.HashTable:
    """Hash the figures `ids` (in that order) streaming the store in batches."""
    position = {item: i for i, item in enumerate(ids)}
    tables: list[imagehash.HashTable] = []
    pending: list[tuple[int, Any]] = []

    def flush() -> None:
        if not pending:
            return
        idx = [i for i, _ in pending]
        table = imagehash.hash_images(
            [s for _, s in pending], crops=cfg.crop_windows, on_done=progress.advance
        )
        # Map batch positions back to global image indices.
        table.owner = np.asarray(idx, np.int64)[table.owner] if len(table.owner) else table.owner
        table.failed = [idx[i] for i in table.failed]
        tables.append(table)
        pending.clear()

    for batch in iter_batches(
        store, "figures", ["figure_id", "image_bytes", "image_path"], batch_size=128
    ):
        if cancel is not None:
            cancel.check()
        fids = batch.column("figure_id").to_pylist()
        blobs = batch.column("image_bytes").to_pylist()
        paths = batch.column("image_path").to_pylist()
        for fid, blob, path in zip(fids, blobs, paths, strict=True):
            i = position.get(fid)
            if i is None:
                continue
            source = blob if blob else (path if path and Path(path).is_file() else None)
            pending.append((i, source))
        if len(pending) >= 128:
            flush()
    flush()
    if not tables:
        return imagehash.HashTable(
            np.zeros((0, imagehash.HASH_BITS), bool),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            list(range(len(ids))),
        )
    # Merge and order rows by owner so per-image slices are contiguous.
    codes = np.concatenate([t.codes for t in tables])
    owner = np.concatenate([t.owner for t in tables])
    window = np.concatenate([t.window for t in tables])
    order = np.lexsort((window, owner))
    seen = set(owner.tolist())
    failed = sorted(
        {f for t in tables for f in t.failed} | {i for i in range(len(ids)) if i not in seen}
    )
    return imagehash.HashTable(codes[order], owner[order], window[order], failed)


def _text_links(
    store: Store,
    other: Store | None,
    items: _Items,
    kind: str,
    cfg: DedupSettings,
    thresholds: dict[str, float],
    settings: Any,
    text_backend: str,
    encoder: Any,
    device: str,
    report: KindReport,
    progress: ProgressReporter,
    cancel: CancelToken | None,
) -> tuple[_Links, np.ndarray]:
    table, key = KIND_TABLE[kind]
    column = TEXT_COLUMN[kind]
    texts: list[str] = [""] * len(items.ids)
    position = {item: i for i, item in enumerate(items.ids)}
    for src, prefix in ((store, ""), (other, EXTERNAL_PREFIX)):
        if src is None:
            continue
        data = read_columns(src, table, [key, column])
        for item, text in zip(data[key], data[column], strict=True):
            i = position.get(prefix + item)
            if i is not None:
                texts[i] = text or ""
    links = _Links()
    if len(texts) < 2:
        return links, np.zeros((len(texts), 1), np.float32)
    tv: TextVectors = text_vectors(
        texts, settings, backend=text_backend, encoder=encoder, progress=progress
    )
    report.backend, report.model, report.note = tv.backend, tv.model, tv.note
    threshold = thresholds["text"] if tv.backend != "tfidf" else thresholds["tfidf"]
    report.thresholds = {"text" if tv.backend != "tfidf" else "tfidf": threshold}
    rows, result = _search(
        tv.vectors, items, cfg.neighbours, cfg, device, store.path, progress, cancel
    )
    qa, qb, sims = result.pairs(threshold)
    a, b = rows[qa], qb
    ok = _allowed_pair(items, other is not None)
    keep = (
        np.array([ok(x, y) for x, y in zip(a, b, strict=True)], bool)
        if len(a)
        else np.zeros(0, bool)
    )
    links.add(a[keep], b[keep], sims[keep], tv.backend)
    report.methods.append(f"{tv.backend} ({tv.model}, {result.method}, {result.device})")
    return links, tv.vectors


# ---------------------------------------------------------------------------- groups
def _existing_groups(store: Store, kind: str) -> list[dict[str, Any]]:
    if store.count("dup_groups") == 0:
        return []
    rows = read_columns(
        store,
        "dup_groups",
        ["group_id", "member_ids", "external_ids", "decision"],
        where=f"kind = {quote(kind)}",
    )
    return [dict(zip(rows, values, strict=True)) for values in zip(*rows.values(), strict=True)]


def _dismissed_pairs(existing: list[dict[str, Any]]) -> set[frozenset[str]]:
    """Member pairs someone declared not duplicates (never linked again)."""
    pairs: set[frozenset[str]] = set()
    for group in existing:
        if group["decision"] != DUP_DISMISSED:
            continue
        members = list(group["member_ids"])
        for i, x in enumerate(members):
            for y in members[i + 1 :]:
                pairs.add(frozenset((x, y)))
    return pairs


def group_id_for(kind: str, members: list[str]) -> str:
    return text_id("dup", kind, *sorted(members))


def _member_similarity(
    kind: str,
    keeper: int,
    member: int,
    vectors: np.ndarray | None,
    hashes: imagehash.HashTable | None,
    clip: tuple[np.ndarray, np.ndarray] | None,
) -> float:
    if keeper == member:
        return 1.0
    best = 0.0
    if kind == "image":
        if hashes is not None:
            best = imagehash.pair_similarity(hashes, keeper, member)
        if clip is not None:
            vec, have = clip
            if have[keeper] and have[member]:
                a, b = vec[keeper], vec[member]
                denom = float(np.linalg.norm(a) * np.linalg.norm(b)) or 1.0
                best = max(best, float(a @ b) / denom)
        return best
    if vectors is not None:
        return float(vectors[keeper] @ vectors[member])
    return best


def run_dedup(
    store: Store,
    settings: Any = None,
    *,
    kinds: tuple[str, ...] | list[str] = DUP_KINDS,
    threshold: float | None = None,
    against: Store | Path | str | None = None,
    since_run: str | None = None,
    text_backend: str = "auto",
    text_encoder: Any = None,
    config: DedupSettings | None = None,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
) -> DedupReport:
    """Find near-duplicate groups of each kind and write them to `dup_groups` (pending).

    `threshold` overrides the kind's threshold for whichever backend runs (for images: the
    hash threshold, and the CLIP one). Returns counts and group sizes per kind.
    """
    progress = progress or NullProgress()
    cfg = config or dedup_settings(settings)
    for kind in kinds:
        if kind not in DUP_KINDS:
            raise PipelineError(
                f"unknown dedup kind {kind!r}", hint=f"one of {', '.join(DUP_KINDS)} or all"
            )
    other: Store | None = None
    if against is not None:
        from store import open_store

        other = against if isinstance(against, Store) else open_store(Path(against), create=False)
        if Path(other.path).resolve() == Path(store.path).resolve():
            raise PipelineError("--against names this same store", hint="give another store folder")
    since = _run_started(store, since_run) if since_run else None
    models_settings = getattr(settings, "models", None)
    device = pick_device(getattr(models_settings, "device", "auto"))
    run_config = {
        "kinds": list(kinds),
        "threshold": threshold,
        "against": str(other.path) if other is not None else "",
        "since_run": since_run or "",
        "text_backend": text_backend,
        "dedup": cfg.model_dump(),
        "device": device,
    }
    fallback_note = ""
    if text_encoder is None and text_backend != "tfidf" and {"caption", "question"} & set(kinds):
        # Load the text model once for both kinds; when it is missing say so (never silent).
        try:
            text_encoder = load_text_encoder(settings)
        except ModelMissingError as exc:
            if text_backend == "model":
                raise
            text_backend = "tfidf"
            fallback_note = (
                f"text model missing ({exc}); near-duplicate text found with character n-gram "
                "TF-IDF cosine instead (less robust to paraphrase)"
            )
            progress.log(fallback_note)
            run_config["text_backend"] = "tfidf (fallback)"
    with record_run(store, STEP, config=run_config) as run:
        report = DedupReport(
            run.run_id, {}, str(other.path) if other else "", since_run or "", device
        )
        for kind in kinds:
            if cancel is not None:
                cancel.check()
            started = utcnow()
            kind_report = _dedup_kind(
                store,
                other,
                kind,
                cfg,
                threshold,
                since,
                settings,
                text_backend,
                text_encoder,
                device,
                run.run_id,
                progress,
                cancel,
            )
            if fallback_note and kind in ("caption", "question"):
                kind_report.note = fallback_note
            kind_report.seconds = round((utcnow() - started).total_seconds(), 3)
            report.kinds[kind] = kind_report
            run.counts[f"{kind}_groups"] = kind_report.groups
            run.counts[f"{kind}_grouped_items"] = kind_report.grouped_items
            run.timings[f"{kind}_s"] = kind_report.seconds
            if kind_report.model:
                run.models[kind] = kind_report.model
            if kind_report.note and kind_report.note not in run.message:
                run.message = (run.message + " | " if run.message else "") + kind_report.note
        return report


def _dedup_kind(
    store: Store,
    other: Store | None,
    kind: str,
    cfg: DedupSettings,
    threshold: float | None,
    since: datetime | None,
    settings: Any,
    text_backend: str,
    text_encoder: Any,
    device: str,
    run_id: str,
    progress: ProgressReporter,
    cancel: CancelToken | None,
) -> KindReport:
    report = KindReport(kind)
    items = _load_items(store, other, kind, since)
    report.items = items.n_local
    report.external_items = len(items.ids) - items.n_local
    report.queried = int(items.query.sum())
    thresholds = {
        "clip": threshold if threshold is not None else cfg.clip_threshold,
        "hash": threshold if threshold is not None else cfg.hash_threshold,
        "text": threshold if threshold is not None else cfg.text_threshold,
        "tfidf": threshold if threshold is not None else cfg.tfidf_threshold,
    }
    if report.queried == 0 or len(items.ids) < 2:
        report.thresholds = {
            k: v for k, v in thresholds.items() if (k in ("clip", "hash")) == (kind == "image")
        }
        return report
    vectors = hashes = clip = None
    if kind == "image":
        report.thresholds = {"clip": thresholds["clip"], "hash": thresholds["hash"]}
        links, hashes = _image_links(
            store, other, items, cfg, thresholds, device, report, progress, cancel
        )
        clip_vec, clip_have, _ = _embedding_vectors(store, CLIP_SPACE, items.ids[: items.n_local])
        if clip_have.any() and other is None:
            clip = (clip_vec, clip_have)
    else:
        links, vectors = _text_links(
            store,
            other,
            items,
            kind,
            cfg,
            thresholds,
            settings,
            text_backend,
            text_encoder,
            device,
            report,
            progress,
            cancel,
        )
    existing = _existing_groups(store, kind)
    dismissed = _dismissed_pairs(existing)
    uf = UnionFind(len(items.ids))
    used = []
    for i, (a, b) in enumerate(zip(links.a, links.b, strict=True)):
        if frozenset((items.ids[a], items.ids[b])) in dismissed:
            continue
        uf.union(a, b)
        used.append(i)
    # Incremental runs only see new-vs-all links: seed with the groups already open.
    if since is not None or other is not None:
        position = {item: i for i, item in enumerate(items.ids)}
        for group in existing:
            if group["decision"] in (DUP_DISMISSED, DUP_SUPERSEDED):
                continue
            members = [position[m] for m in group["member_ids"] if m in position]
            for m in members[1:]:
                uf.union(members[0], m)
    report.links = len(used)
    components = uf.components(min_size=2)
    if other is not None:  # a group must hold at least one local item and one external
        components = [c for c in components if min(c) < items.n_local <= max(c)]
    qualities = quality_keys(store, kind, [items.ids[i] for i in range(items.n_local)])
    link_index: dict[int, list[int]] = {}
    for i in used:
        link_index.setdefault(uf.find(links.a[i]), []).append(i)
    rows = []
    now = utcnow()
    for comp in components:
        member_ids = [items.ids[i] for i in comp]
        keeper_pos, reason = choose_keeper(member_ids, qualities, EXTERNAL_PREFIX)
        keeper = comp[keeper_pos]
        sims = [round(_member_similarity(kind, keeper, m, vectors, hashes, clip), 4) for m in comp]
        comp_links = link_index.get(uf.find(comp[0]), [])
        link_sims = [links.sim[i] for i in comp_links]
        methods = sorted({links.method[i] for i in comp_links})
        rows.append(
            {
                "group_id": group_id_for(kind, member_ids),
                "kind": kind,
                "member_ids": member_ids,
                "similarities": sims,
                "size": len(member_ids),
                "method": "+".join(methods),
                "threshold": float(min(thresholds[_THRESHOLD_OF[m]] for m in methods))
                if methods
                else 0.0,
                "max_similarity": round(max(link_sims), 4) if link_sims else 0.0,
                "min_similarity": round(min(link_sims), 4) if link_sims else 0.0,
                "keeper_id": member_ids[keeper_pos],
                "keeper_reason": reason,
                "decision": DUP_PENDING,
                "external_ids": [m for m in member_ids if m.startswith(EXTERNAL_PREFIX)],
                "links_json": json.dumps(
                    [
                        [
                            items.ids[links.a[i]],
                            items.ids[links.b[i]],
                            round(links.sim[i], 4),
                            links.method[i],
                        ]
                        for i in comp_links[:500]
                    ]
                ),
                "created_at": now,
                "run_id": run_id,
            }
        )
    report.new_groups = store.insert_new("dup_groups", rows) if rows else 0
    report.superseded = _supersede(
        store, kind, existing, rows, full_run=since is None and other is None
    )
    report.groups = len(rows)
    report.grouped_items = sum(r["size"] for r in rows)
    sizes = Counter(r["size"] for r in rows)
    report.size_histogram = {str(size): count for size, count in sorted(sizes.items())}
    report.largest = [
        {
            "group_id": r["group_id"],
            "size": r["size"],
            "keeper_id": r["keeper_id"],
            "max_similarity": r["max_similarity"],
        }
        for r in sorted(rows, key=lambda r: (-r["size"], r["group_id"]))[:5]
    ]
    return report


def _supersede(
    store: Store,
    kind: str,
    existing: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    full_run: bool,
) -> int:
    """Mark pending groups of `kind` that this run regrouped as superseded (kept for the audit)."""
    new_ids = {r["group_id"] for r in rows}
    members_now = {m for r in rows for m in r["member_ids"]}
    stale = []
    for group in existing:
        if group["decision"] != DUP_PENDING or group["group_id"] in new_ids:
            continue
        # A full run recomputes every link: a pending group it did not find again is stale.
        # An incremental run only supersedes groups whose members it regrouped.
        if full_run or members_now.intersection(group["member_ids"]):
            stale.append(group["group_id"])
    for start in range(0, len(stale), 500):
        chunk = stale[start : start + 500]
        # only groups still pending now: a decision taken while dedup ran stays
        store.update_where(
            "dup_groups",
            f"decision = {quote(DUP_PENDING)} AND group_id IN ({', '.join(quote(g) for g in chunk)})",
            {"decision": DUP_SUPERSEDED},
        )
    return len(stale)
