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

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from microvqa_tui.common.runs import RunRecord
from microvqa_tui.config.dedup import DedupSettings, dedup_settings
from microvqa_tui.errors import ModelMissingError, PipelineError
from microvqa_tui.pipeline.dedup import imagehash
from microvqa_tui.pipeline.dedup.groups import Found, GroupWriter, join_links, supersede
from microvqa_tui.pipeline.dedup.groups import existing_groups as _existing_groups
from microvqa_tui.pipeline.dedup.imagelinks import clip_links, clip_vectors, hash_items, hash_links
from microvqa_tui.pipeline.dedup.items import EXTERNAL_PREFIX, Items, load_items, run_started
from microvqa_tui.pipeline.dedup.keeper import quality_keys
from microvqa_tui.pipeline.dedup.knn import pick_device
from microvqa_tui.pipeline.dedup.text import load_text_encoder
from microvqa_tui.pipeline.dedup.textlinks import TextSource, text_links
from microvqa_tui.pipeline.dedup.vectors import Search
from microvqa_tui.pipeline.tablestep import TableStep, run_table_step
from microvqa_tui.progress import CancelToken, ProgressReporter
from microvqa_tui.vocabulary import DUP_KINDS
from store import Store
from store.schema import utcnow

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.config import Settings

__all__ = ["EXTERNAL_PREFIX", "DedupReport", "KindReport", "run_dedup"]

STEP = "dedup"
TEXT_KINDS = ("caption", "question")


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

    def add_note(self, note: str) -> None:
        if note:
            self.note = (self.note + "; " if self.note else "") + note

    def summarize(self, rows: list[dict[str, Any]]) -> None:
        """Group counts, the size histogram and the five largest groups."""
        self.groups = len(rows)
        self.grouped_items = sum(r["size"] for r in rows)
        sizes = Counter(r["size"] for r in rows)
        self.size_histogram = {str(size): count for size, count in sorted(sizes.items())}
        largest = sorted(rows, key=lambda r: (-r["size"], r["group_id"]))[:5]
        keys = ("group_id", "size", "keeper_id", "max_similarity")
        self.largest = [{k: r[k] for k in keys} for r in largest]


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


@dataclass
class DedupJob:
    """One dedup run: what is compared with what, and how."""

    store: Store
    other: Store | None  # the --against store
    cfg: DedupSettings
    threshold: float | None  # overrides every kind's thresholds
    since: datetime | None  # --since-run: only items created after this are queried
    settings: Settings
    text_backend: str
    text_encoder: Any
    search: Search
    run_id: str = ""
    fallback_note: str = ""  # the text model was missing: TF-IDF instead

    @property
    def incremental(self) -> bool:
        return self.since is not None or self.other is not None

    def thresholds(self) -> dict[str, float]:
        t, cfg = self.threshold, self.cfg
        return {
            "clip": t if t is not None else cfg.clip_threshold,
            "hash": t if t is not None else cfg.hash_threshold,
            "text": t if t is not None else cfg.text_threshold,
            "tfidf": t if t is not None else cfg.tfidf_threshold,
        }

    def text_source(self, kind: str) -> TextSource:
        return TextSource(
            self.store, self.other, kind, self.settings, self.text_backend, self.text_encoder
        )


def run_dedup(
    store: Store,
    settings: Settings,
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
    for kind in kinds:
        if kind not in DUP_KINDS:
            raise PipelineError(
                f"unknown dedup kind {kind!r}", hint=f"one of {', '.join(DUP_KINDS)} or all"
            )
    step = DedupStep(list(kinds), threshold, against, since_run, text_backend, text_encoder, config)
    return run_table_step(step, store, settings, progress=progress, cancel=cancel)


class DedupStep(TableStep[DedupReport]):
    """Dedup as a whole-table step: one part per kind (every item of it compared at once)."""

    name = STEP
    reads = ("figures", "captions", "mcqs", "dup_groups", "emb_clip_image", "emb_text_caption")
    writes = ("dup_groups",)

    def __init__(
        self,
        kinds: list[str],
        threshold: float | None,
        against: Store | Path | str | None,
        since_run: str | None,
        text_backend: str,
        text_encoder: Any,
        config: DedupSettings | None,
    ) -> None:
        self.kinds, self.threshold, self.against = kinds, threshold, against
        self.since_run = since_run or ""
        self.text_backend, self.text_encoder, self.config = text_backend, text_encoder, config

    def settle(self, store: Store, settings: Settings) -> dict[str, Any]:
        """The settings, the other store, and the text model (loaded once for both kinds)."""
        cfg = self.config or dedup_settings(settings)
        self.device = device = pick_device(settings.models.device)
        other = _open_other(store, self.against)
        since = run_started(store, self.since_run) if self.since_run else None
        search = Search(cfg, device, store.path, self.progress, self.cancel)
        job = DedupJob(
            store, other, cfg, self.threshold, since, settings, self.text_backend,
            self.text_encoder, search,
        )  # fmt: skip
        if {"caption", "question"} & set(self.kinds):
            _load_text_model(job)
        self.job = job
        return {
            "kinds": self.kinds,
            "threshold": self.threshold,
            "against": str(other.path) if other is not None else "",
            "since_run": self.since_run,
            "text_backend": "tfidf (fallback)" if job.fallback_note else self.text_backend,
            "dedup": cfg.model_dump(),
            "device": device,
        }

    def start(self, run: RunRecord) -> None:
        super().start(run)
        self.job.run_id = run.run_id
        other = self.job.other
        against = str(other.path) if other is not None else ""
        self.dedup_report = DedupReport(run.run_id, {}, against, self.since_run, self.device)

    def parts(self) -> list[str]:
        return self.kinds

    def run_part(self, store: Store, run: RunRecord, part: str) -> None:
        self.dedup_report.kinds[part] = kind_report = _timed_kind(self.job, part)
        run.counts[f"{part}_groups"] = kind_report.groups
        run.counts[f"{part}_grouped_items"] = kind_report.grouped_items
        if kind_report.model:
            run.models[part] = kind_report.model
        if kind_report.note and kind_report.note not in run.message:
            run.message = (run.message + " | " if run.message else "") + kind_report.note

    def report(self) -> DedupReport:
        return self.dedup_report


def _open_other(store: Store, against: Store | Path | str | None) -> Store | None:
    if against is None:
        return None
    from store import open_store

    other = against if isinstance(against, Store) else open_store(Path(against), create=False)
    if Path(other.path).resolve() == Path(store.path).resolve():
        raise PipelineError("--against names this same store", hint="give another store folder")
    return other


def _load_text_model(job: DedupJob) -> None:
    """Load the text model once for both text kinds; when it is missing say so (never
    silent) and fall back to TF-IDF, unless the model was asked for."""
    if job.text_encoder is not None or job.text_backend == "tfidf":
        return
    try:
        job.text_encoder = load_text_encoder(job.settings)
    except ModelMissingError as exc:
        if job.text_backend == "model":
            raise
        job.text_backend = "tfidf"
        job.fallback_note = (
            f"text model missing ({exc}); near-duplicate text found with character n-gram "
            "TF-IDF cosine instead (less robust to paraphrase)"
        )
        job.search.progress.log(job.fallback_note)


def _timed_kind(job: DedupJob, kind: str) -> KindReport:
    started = utcnow()
    report = _dedup_kind(job, kind)
    if job.fallback_note and kind in TEXT_KINDS:
        report.note = job.fallback_note
    report.seconds = round((utcnow() - started).total_seconds(), 3)
    return report


def _dedup_kind(job: DedupJob, kind: str) -> KindReport:
    report = KindReport(kind)
    items = load_items(job.store, job.other, kind, job.since)
    report.items = items.n_local
    report.external_items = len(items.ids) - items.n_local
    report.queried = int(items.query.sum())
    thresholds = job.thresholds()
    if report.queried == 0 or len(items.ids) < 2:
        report.thresholds = {
            k: v for k, v in thresholds.items() if (k in ("clip", "hash")) == (kind == "image")
        }
        return report
    if kind == "image":
        found = _image_found(job, items, thresholds, report)
    else:
        found = _text_found(job, kind, items, thresholds, report)
    existing = _existing_groups(job.store, kind)
    uf, used = join_links(items, found.links, existing, seed_open=job.incremental)
    report.links = len(used)
    qualities = quality_keys(job.store, kind, items.local_ids)
    writer = GroupWriter(kind, items, found, thresholds, qualities, job.run_id, utcnow())
    rows = writer.rows(uf, used, against=job.other is not None)
    report.new_groups = job.store.insert_new("dup_groups", rows) if rows else 0
    report.superseded = supersede(job.store, existing, rows, full_run=not job.incremental)
    report.summarize(rows)
    return report


def _image_found(
    job: DedupJob, items: Items, thresholds: dict[str, float], report: KindReport
) -> Found:
    """CLIP links where vectors are stored (both stores, same model), and hash links always."""
    report.thresholds = {"clip": thresholds["clip"], "hash": thresholds["hash"]}
    against = job.other is not None
    vec, have, model, note = clip_vectors(job.store, job.other, items)
    report.add_note(note)
    links, how = clip_links(vec, have, items, against, thresholds["clip"], job.search)
    if how:
        report.methods.append(f"clip ({model or 'stored embeddings'}, {how})")
        report.model = model
    hashes = hash_items(job.store, job.other, items, job.search)
    report.failed_images = len(hashes.failed)
    more, device = hash_links(hashes, items, against, thresholds["hash"], job.search)
    if device:
        windows = imagehash.N_WINDOWS if job.cfg.crop_windows else 1
        report.methods.append(
            f"phash ({imagehash.HASH_VERSION}, {windows} windows, exact, {device})"
        )
    links.extend(more)
    # Member similarities use CLIP only within one store (the external vectors may differ).
    clip = (vec[: items.n_local], have[: items.n_local]) if have.any() and not against else None
    return Found(links, hashes=hashes, clip=clip)


def _text_found(
    job: DedupJob, kind: str, items: Items, thresholds: dict[str, float], report: KindReport
) -> Found:
    links, tv, how = text_links(job.text_source(kind), items, thresholds, job.search)
    if tv is None:
        return Found(links)
    report.backend, report.model, report.note = tv.backend, tv.model, tv.note
    key = "tfidf" if tv.backend == "tfidf" else "text"
    report.thresholds = {key: thresholds[key]}
    report.methods.append(f"{tv.backend} ({tv.model}, {how})")
    return Found(links, vectors=tv.vectors)
