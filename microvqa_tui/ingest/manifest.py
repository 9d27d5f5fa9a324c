"""Reader for JSONL / CSV / TSV manifests: one row per figure, image paths relative to the file.

Recognised keys (first present wins): image path `image`/`image_path`/`path`/`file`…,
caption `caption`/`image_caption`/`text`, plus id, article_id, license, attribution; a row
with `question` and `answer` (no `choices`) also imports that QA (`fields.qa_input`); every
other key (the sample's source, modality, panels, …) is kept in Figure.meta_json.
Refs are `line N` (JSONL, 1-based file lines) and `row N` (CSV, 1-based data rows).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from microvqa_tui.config import IngestSettings
from microvqa_tui.errors import IngestError
from microvqa_tui.ingest import reasons
from microvqa_tui.ingest.fields import (
    CAPTION_KEYS,
    IMAGE_KEYS,
    FieldTypeError,
    common_fields,
    first_key,
    qa_input,
    rest,
)
from microvqa_tui.ingest.paths import resolve_under
from microvqa_tui.ingest.records import KIND_MANIFEST, ImageRef, Record, Reject, excerpt

JSONL_EXTENSIONS = (".jsonl", ".ndjson")
CSV_EXTENSIONS = (".csv", ".tsv")
MANIFEST_EXTENSIONS = JSONL_EXTENSIONS + CSV_EXTENSIONS


class ManifestReader:
    kind = KIND_MANIFEST

    def __init__(self, files: list[Path], settings: IngestSettings) -> None:
        self.files = files
        self.settings = settings
        self.label = files[0].name if len(files) == 1 else f"{len(files)} manifests"

    def plan(self) -> int | None:
        total = 0
        for path in self.files:
            try:
                with path.open("rb") as handle:
                    lines = sum(1 for line in handle if line.strip())
            except OSError as exc:
                raise IngestError(f"cannot read manifest {path}: {exc}") from None
            if path.suffix.lower() in CSV_EXTENSIONS:
                self._csv_header(path)
                lines -= 1
            total += max(lines, 0)
        return total

    def __iter__(self) -> Iterator[Record | Reject]:
        for path in self.files:
            if path.suffix.lower() in CSV_EXTENSIONS:
                yield from self._csv(path)
            else:
                yield from self._jsonl(path)

    # ------------------------------------------------------------------ formats
    def _jsonl(self, path: Path) -> Iterator[Record | Reject]:
        source = str(path)
        with path.open("rb") as handle:
            for lineno, raw in enumerate(handle, 1):
                if not raw.strip():
                    continue
                ref = f"line {lineno}"
                # surrogateescape keeps going on bad bytes: a non-UTF-8 caption is reported
                # as such, not as an unreadable row.
                line = raw.decode("utf-8", errors="surrogateescape").lstrip("\ufeff")
                try:
                    row = json.loads(line)
                except (json.JSONDecodeError, RecursionError) as exc:
                    yield Reject(
                        source, ref, reasons.MALFORMED_ROW, f"invalid JSON: {exc}", excerpt(raw)
                    )
                    continue
                if not isinstance(row, dict):
                    yield Reject(
                        source,
                        ref,
                        reasons.MALFORMED_ROW,
                        f"expected a JSON object, got {type(row).__name__}",
                        excerpt(raw),
                    )
                    continue
                yield self._record(path, ref, row, excerpt(raw))

    def _csv_header(self, path: Path) -> list[str]:
        try:
            with path.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
                header = next(csv.reader(f, dialect=self._dialect(path)), None)
        except (OSError, csv.Error) as exc:
            raise IngestError(f"cannot read manifest {path}: {exc}") from None
        if not header:
            raise IngestError(f"manifest {path} is empty: expected a header row")
        if not any(k in header for k in IMAGE_KEYS):
            raise IngestError(
                f"manifest {path} has no image column",
                hint=f"name one of: {', '.join(IMAGE_KEYS)}",
            )
        return header

    @staticmethod
    def _dialect(path: Path) -> type[csv.Dialect]:
        return csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel

    def _csv(self, path: Path) -> Iterator[Record | Reject]:
        source = str(path)
        header = self._csv_header(path)
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
        with path.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
            reader = csv.reader(f, dialect=self._dialect(path))
            next(reader, None)
            row_no = 0
            while True:
                try:
                    values = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    row_no += 1
                    yield Reject(source, f"row {row_no}", reasons.MALFORMED_ROW, str(exc))
                    continue
                if not any(v.strip() for v in values):
                    continue
                row_no += 1
                ref = f"row {row_no}"
                payload = excerpt(",".join(values))
                if len(values) != len(header):
                    yield Reject(
                        source,
                        ref,
                        reasons.MALFORMED_ROW,
                        f"expected {len(header)} fields, got {len(values)}",
                        payload,
                    )
                    continue
                # Empty cells are absent fields, except an empty caption, which is reported.
                row = {
                    k: v
                    for k, v in zip(header, values, strict=True)
                    if v != "" or k in CAPTION_KEYS
                }
                yield self._record(path, ref, row, payload)

    # ------------------------------------------------------------------ one row
    def _record(self, path: Path, ref: str, row: dict[str, Any], payload: str) -> Record | Reject:
        source = str(path)
        image_key = first_key(row, IMAGE_KEYS)
        if image_key is None:
            return Reject(
                source, ref, reasons.MALFORMED_ROW, "the row names no image file", payload
            )
        image_value = row[image_key]
        if not isinstance(image_value, str):
            return Reject(
                source,
                ref,
                reasons.MALFORMED_ROW,
                f"field {image_key!r} must be a path string, got {type(image_value).__name__}",
                payload,
            )
        try:
            image_value.encode("utf-8")
        except UnicodeEncodeError:
            return Reject(
                source, ref, reasons.MALFORMED_ROW, "the image path is not UTF-8", payload
            )
        image_path = resolve_under(path.parent, image_value, self.settings.allow_outside_paths)
        if isinstance(image_path, str):
            return Reject(source, ref, reasons.UNSAFE_PATH, image_path, payload)
        used = {image_key}
        caption_key = first_key(row, CAPTION_KEYS)
        caption: Any = None
        if caption_key is not None:
            caption = row[caption_key]
            used.add(caption_key)
        else:
            present = [k for k in CAPTION_KEYS if k in row]
            if present:  # present but empty or null
                caption = ""
                used.update(present)
        try:
            fields = common_fields(row, used)
        except FieldTypeError as exc:
            return Reject(source, ref, reasons.MALFORMED_ROW, str(exc), payload)
        qa = qa_input(row, used)
        if isinstance(qa, str):
            return Reject(source, ref, reasons.MALFORMED_ROW, qa, payload)
        return Record(
            kind=self.kind,
            source=source,
            ref=ref,
            images=[ImageRef(path=image_path, location=str(image_path))],
            caption=caption,
            caption_required=qa is None,
            qa=qa,
            original_id=fields.original_id,
            article_id=fields.article_id,
            license=fields.license,
            attribution=fields.attribution,
            meta=rest(row, used),
            payload=payload,
        )
