"""Batching, parallel validation and idempotent writes.

The main thread streams records from a reader and cuts them into batches. For each batch:

1. an I/O pool reads image files (folder/manifest sources), hashes image bytes and checks
   captions;
2. figures already in the store are looked up (one query per batch; skipped when the run
   started on an empty table), so a resumed run does not decode them again;
3. a decode pool fully decodes each new image once (Pillow releases the GIL);
4. the batch's figures, captions, QAs, MCQs and quarantine rows are written with
   `Store.insert_new` (merge-insert on content-addressed ids), in that order.

Step 4 of batch k runs while the decoders work on batches k+1 and k+2, so a few batches at
most are in memory. Cancellation is checked between batches only: what is written is always whole
batches, and a re-run skips it (zero new rows) and writes the rest.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import stat
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path

from microvqa_tui.common.quarantine import Quarantined
from microvqa_tui.config import IngestSettings
from microvqa_tui.ingest import reasons
from microvqa_tui.ingest.fields import to_json
from microvqa_tui.ingest.paths import not_utf8, printable
from microvqa_tui.ingest.records import ImageRef, QAInput, Record, Reject, excerpt
from microvqa_tui.ingest.rows import Columns
from microvqa_tui.ingest.validate import (
    ImageInfo,
    Problem,
    caption_byte_limit,
    check_caption,
    check_image,
    pillow_limits,
)
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter
from microvqa_tui.vocabulary import FAMILY_IMPORTED, ITEM_INPUT, ORIGIN_IMPORTED, TASK_UNKNOWN
from store import Store
from store.ids import ID_HEX_CHARS, text_id
from store.queries import in_list
from store.schema import utcnow

#: Batches decoded ahead of the one being written: the decoders stay busy while the main
#: thread writes a batch and reads the next one. Memory holds PIPELINE_DEPTH + 2 batches.
PIPELINE_DEPTH = 2
#: Consecutive batches without an already-stored figure after which lookups stop.
KNOWN_CHECK_PATIENCE = 8


@dataclass(slots=True)
class _Image:
    figure_id: str
    sha256: str
    data: bytes
    ref: ImageRef


@dataclass(slots=True)
class _Prepared:
    record: Record
    caption: str | None
    images: list[_Image]


@dataclass(slots=True)
class _Batch:
    size: int
    items: list[_Prepared | Reject]
    known: set[str]
    decodes: dict[str, Future[ImageInfo | Problem]]


@dataclass
class _BatchRows:
    """The rows one batch adds, per table."""

    figures: Columns = field(default_factory=lambda: Columns("figures"))
    captions: Columns = field(default_factory=lambda: Columns("captions"))
    qas: Columns = field(default_factory=lambda: Columns("qas"))
    mcqs: Columns = field(default_factory=lambda: Columns("mcqs"))
    quarantine: Columns = field(default_factory=lambda: Columns("quarantine"))


def _failed_image(
    item: _Prepared, results: dict[str, ImageInfo | Problem]
) -> tuple[_Image, Problem] | None:
    """The item's first image whose decode failed, with the problem."""
    for image in item.images:
        result = results.get(image.figure_id)
        if isinstance(result, Problem):
            return image, result
    return None


@dataclass
class Counts:
    read: int = 0
    figures_new: int = 0
    captions_new: int = 0
    qas_new: int = 0
    mcqs_new: int = 0
    mcqs_linked: int = 0  # known MCQs given their QA on a re-ingest
    quarantine_new: int = 0
    figures_skipped_known: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["quarantined"] = dict(sorted(self.quarantined.items()))
        return out


# ---------------------------------------------------------------------- worker functions
def read_image_file(path: Path, settings: IngestSettings) -> bytes | Problem:
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return Problem(reasons.MISSING_FILE, f"no such file: {path}")
    except OSError as exc:
        return Problem(reasons.UNREADABLE_FILE, f"{path}: {exc}")
    if not stat.S_ISREG(info.st_mode):
        return Problem(reasons.UNREADABLE_FILE, f"{path} is not a regular file")
    if info.st_size > settings.max_image_bytes:
        return Problem(
            reasons.FILE_TOO_LARGE,
            f"{info.st_size} bytes > ingest.max_image_bytes {settings.max_image_bytes}",
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        return Problem(reasons.UNREADABLE_FILE, f"{path}: {exc}")


def _reject(record: Record, problem: Problem, suffix: str = "") -> Reject:
    payload = record.payload
    if not payload and isinstance(record.caption, str | bytes):
        payload = excerpt(record.caption)
    return Reject(record.source, record.ref + suffix, problem.reason, problem.detail, payload)


def text_problem(record: Record) -> Problem | None:
    """Why the record's names or fields cannot be stored as text: on Linux a file name (or a
    tar member name, or metadata decoded leniently) may be bytes that are not UTF-8."""
    named = [
        ("source", record.source),
        ("name", record.ref),
        *(("path", image.location) for image in record.images),
        *(("id", image.original_id) for image in record.images),
        ("id", record.original_id),
        ("article id", record.article_id),
        ("license", record.license),
        ("attribution", record.attribution),
    ]
    for what, text in named:
        if not_utf8(text):
            return Problem(reasons.NAME_NOT_UTF8, f"the {what} {printable(text)!r} is not UTF-8")
    if record.meta and not_utf8(to_json(record.meta)):
        return Problem(reasons.NAME_NOT_UTF8, "a metadata field is not UTF-8")
    return None


def prepare(record: Record, settings: IngestSettings) -> _Prepared | Reject:
    """Check names and caption, load and hash the images (no decoding yet)."""
    problem = text_problem(record)
    if problem is not None:
        return _reject(record, problem)
    caption: str | None = None
    raw = record.caption
    optional_and_absent = not record.caption_required and (
        raw is None or (isinstance(raw, str | bytes) and not raw.strip())
    )
    if not optional_and_absent:
        if isinstance(raw, bytes) and len(raw) > caption_byte_limit(settings):
            return _reject(
                record,
                Problem(reasons.CAPTION_TOO_LONG, f"{len(raw)} bytes of caption"),
            )
        checked = check_caption(raw, settings)
        if isinstance(checked, Problem):
            return _reject(record, checked)
        caption = checked
    if not record.images:
        return _reject(record, Problem(reasons.MISSING_FILE, "the record has no image"))
    images = []
    for ref in record.images:
        data = ref.data
        if data is None:
            if ref.path is None:
                return _reject(record, Problem(reasons.MISSING_FILE, "no image"), ref.ref_suffix)
            loaded = read_image_file(ref.path, settings)
            if isinstance(loaded, Problem):
                return _reject(record, loaded, ref.ref_suffix)
            data = loaded
        if len(data) > settings.max_image_bytes:
            return _reject(
                record,
                Problem(
                    reasons.FILE_TOO_LARGE,
                    f"{len(data)} bytes > ingest.max_image_bytes {settings.max_image_bytes}",
                ),
                ref.ref_suffix,
            )
        digest = hashlib.sha256(data).hexdigest()  # == store.ids.content_id, hashed once
        images.append(_Image(digest[:ID_HEX_CHARS], digest, data, ref))
    return _Prepared(record, caption, images)


def _chunks(items: Iterable[Record | Reject], size: int) -> Iterator[list[Record | Reject]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


# ---------------------------------------------------------------------- the runner
class IngestRunner:
    def __init__(
        self,
        store: Store,
        settings: IngestSettings,
        *,
        run_id: str,
        kind: str,
        progress: ProgressReporter | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.run_id = run_id
        self.kind = kind
        self.progress = progress or NullProgress()
        self.cancel = cancel
        self.workers = settings.workers or os.cpu_count() or 1
        self.counts = Counts()
        self._check_known = False
        self._misses = 0

    def _check_cancel(self) -> None:
        if self.cancel is not None:
            self.cancel.check()

    def run(self, items: Iterable[Record | Reject]) -> Counts:
        self._check_known = self.store.count("figures") > 0
        io_pool = ThreadPoolExecutor(max(2, 2 * self.workers), thread_name_prefix="ingest-io")
        decode_pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ingest-decode")
        pending: deque[_Batch] = deque()
        with pillow_limits(self.settings):
            try:
                for chunk in _chunks(items, self.settings.batch_size):
                    self._check_cancel()
                    pending.append(self._start(chunk, io_pool, decode_pool))
                    if len(pending) > PIPELINE_DEPTH:
                        self._finish(pending.popleft())
                while pending:
                    self._finish(pending.popleft())
            finally:
                # Queued work of an abandoned batch (cancel, error) is dropped, not waited on.
                io_pool.shutdown(wait=True, cancel_futures=True)
                decode_pool.shutdown(wait=True, cancel_futures=True)
        return self.counts

    # ------------------------------------------------------------------ steps
    def _known(self, figure_ids: list[str]) -> set[str]:
        """Figures of the batch already in the store (their decode is skipped).

        Each lookup scans the id column; once KNOWN_CHECK_PATIENCE batches in a row had no
        known figure (past the part a previous run wrote), lookups stop: merge-insert still
        keeps the store free of duplicates, at worst an image is decoded again."""
        if not self._check_known or not figure_ids:
            return set()
        known = self.store.ids("figures", in_list("figure_id", figure_ids))
        self._misses = 0 if known else self._misses + 1
        if self._misses >= KNOWN_CHECK_PATIENCE:
            self._check_known = False
        return known

    def _start(
        self,
        chunk: list[Record | Reject],
        io_pool: ThreadPoolExecutor,
        decode_pool: ThreadPoolExecutor,
    ) -> _Batch:
        self.counts.read += len(chunk)
        futures = [
            io_pool.submit(prepare, item, self.settings) if isinstance(item, Record) else None
            for item in chunk
        ]
        items: list[_Prepared | Reject] = [
            future.result() if future is not None else item  # type: ignore[misc]
            for future, item in zip(futures, chunk, strict=True)
        ]
        ids = list(
            dict.fromkeys(
                image.figure_id
                for item in items
                if isinstance(item, _Prepared)
                for image in item.images
            )
        )
        known = self._known(ids)
        decodes: dict[str, Future[ImageInfo | Problem]] = {}
        for item in items:
            if isinstance(item, _Prepared):
                for image in item.images:
                    fid = image.figure_id
                    if fid not in known and fid not in decodes:
                        decodes[fid] = decode_pool.submit(check_image, image.data, self.settings)
        return _Batch(len(chunk), items, known, decodes)

    def _finish(self, batch: _Batch) -> None:
        results = {fid: future.result() for fid, future in batch.decodes.items()}
        self._check_cancel()
        now = utcnow()
        rows = _BatchRows()
        added: set[str] = set()
        for item in batch.items:
            if isinstance(item, Reject):
                self._quarantine(rows.quarantine, item, now)
                continue
            record = item.record
            failed = _failed_image(item, results)
            if failed is not None:
                image, problem = failed
                self._quarantine(
                    rows.quarantine, _reject(record, problem, image.ref.ref_suffix), now
                )
                continue
            meta_json = to_json(record.meta)
            for image in item.images:
                fid = image.figure_id
                if fid in batch.known:
                    self.counts.figures_skipped_known += 1
                    continue
                if fid in added:
                    continue
                added.add(fid)
                info = results[fid]
                assert isinstance(info, ImageInfo)
                rows.figures.append(self._figure_row(record, image, info, meta_json, now))
            figure_id = item.images[0].figure_id
            caption_id = ""
            if item.caption is not None:
                caption_id = text_id(figure_id, item.caption)
                rows.captions.append(self._caption_row(record, caption_id, figure_id, item, now))
            qa_id = self._qa(rows.qas, record, figure_id, caption_id, now)
            if record.mcq is not None:
                rows.mcqs.append(self._mcq_row(record, item, caption_id, qa_id, now))
        self._insert(rows)
        self.progress.advance(batch.size)

    def _caption_row(
        self, record: Record, caption_id: str, figure_id: str, item: _Prepared, now
    ) -> dict:
        return {
            "caption_id": caption_id,
            "figure_id": figure_id,
            "text": item.caption,
            "source": record.source,
            "source_ref": record.ref,
            "created_at": now,
            "run_id": self.run_id,
        }

    def _insert(self, rows: _BatchRows) -> None:
        """Write a batch's new rows, figures first: a caption, QA or MCQ never points at a
        figure that is not written."""
        if len(rows.figures):
            self.counts.figures_new += self.store.insert_new("figures", rows.figures.to_arrow())
        if len(rows.captions):
            self.counts.captions_new += self.store.insert_new("captions", rows.captions.to_arrow())
        if len(rows.qas):
            self.counts.qas_new += self.store.insert_new("qas", rows.qas.to_arrow())
        if len(rows.mcqs):
            new = self.store.insert_new("mcqs", rows.mcqs.to_arrow())
            self.counts.mcqs_new += new
            if new < len(rows.mcqs):
                self._link_known(rows.mcqs)
        if len(rows.quarantine):
            quarantined = self.store.insert_new("quarantine", rows.quarantine.to_arrow())
            self.counts.quarantine_new += quarantined

    def _figure_row(
        self, record: Record, image: _Image, info: ImageInfo, meta_json: str, now
    ) -> dict[str, object]:
        return {
            "figure_id": image.figure_id,
            "content_hash": image.sha256,
            "image_bytes": image.data if self.settings.keep_image_bytes else None,
            "image_path": image.ref.location,
            "width": info.width,
            "height": info.height,
            "format": info.format,
            "mode": info.mode,
            "byte_size": len(image.data),
            "source_kind": record.kind,
            "source": record.source,
            "source_ref": record.ref + image.ref.ref_suffix,
            "original_id": image.ref.original_id or record.original_id,
            "article_id": record.article_id,
            "license": record.license,
            "attribution": record.attribution,
            "meta_json": meta_json,
            "ingested_at": now,
            "run_id": self.run_id,
        }

    def _qa(self, rows: Columns, record: Record, figure_id: str, caption_id: str, now) -> str:
        """Append the record's QA (an imported QA, or the question + correct answer + CoT of
        an imported MCQ, which the signals and the graph then judge); its id, or ""."""
        if record.qa is not None:
            qa = record.qa
        elif record.mcq is not None:
            q = record.mcq
            qa = QAInput(q.question, q.correct_answer, q.task_str or TASK_UNKNOWN, q.cot)
        else:
            return ""
        qa_id = text_id(figure_id, qa.question, qa.answer)
        rows.append(
            {
                "qa_id": qa_id,
                "figure_id": figure_id,
                "caption_id": caption_id,
                "question": qa.question,
                "answer": qa.answer,
                "task_type": qa.task_type,
                "evidence": qa.evidence,
                "origin": ORIGIN_IMPORTED,
                "created_at": now,
                "run_id": self.run_id,
            }
        )
        return qa_id

    def _mcq_row(
        self, record: Record, item: _Prepared, caption_id: str, qa_id: str, now
    ) -> dict[str, object]:
        q = record.mcq
        assert q is not None
        image_ids = [image.figure_id for image in item.images]
        params = {"source": record.source, "source_ref": record.ref, **q.params}
        if caption_id:
            params["caption_id"] = caption_id
        return {
            "mcq_id": text_id(
                FAMILY_IMPORTED, *image_ids, q.question, *q.choices, str(q.correct_index)
            ),
            "qa_id": qa_id,
            "figure_id": image_ids[0],
            "image_ids": image_ids,
            "question": q.question,
            "choices": q.choices,
            "correct_index": q.correct_index,
            "correct_answer": q.correct_answer,
            "cot": q.cot,
            "task_str": q.task_str,
            "family": FAMILY_IMPORTED,
            "origin": ORIGIN_IMPORTED,
            "params_json": to_json(params),
            "created_at": now,
            "run_id": self.run_id,
        }

    def _link_known(self, mcqs: Columns) -> None:
        """MCQs a version before QA import stored without their QA get its id now (re-ingest)."""
        links = dict(zip(mcqs.data["mcq_id"], mcqs.data["qa_id"], strict=True))
        where = f"{in_list('mcq_id', list(links))} AND qa_id = ''"
        stale = self.store.rows("mcqs", where)
        if stale:
            self.store.upsert("mcqs", [{**row, "qa_id": links[row["mcq_id"]]} for row in stale])
            self.counts.mcqs_linked += len(stale)

    def _quarantine(self, rows: Columns, reject: Reject, now) -> None:
        self.counts.quarantined[reject.reason] += 1
        # Whatever a reader put in the reject, the row must be storable text.
        source, ref = printable(reject.source), printable(reject.ref)
        held = Quarantined(
            stage=reasons.STAGE,
            reason=reject.reason,
            item_kind=ITEM_INPUT,
            item_id=ref,
            source=source,
            ref=ref,
            detail=printable(reject.detail),
            payload=printable(reject.payload),
        )
        rows.append(held.row(self.run_id, now))
