"""Reader for Parquet files (Hugging Face image datasets), streamed in record batches.

The image column is a Hugging Face image struct `{bytes, path}`, a list of them (MicroVQA's
`images_list`), raw binary, or a path string relative to the file. When the file has
`question`, `choices` and `correct_index` columns, each row also becomes an imported MCQ:
MicroVQA++ (image_name, image, question, choices, correct_index, correct_answer, cot,
task_str, image_caption, images_source) and the MicroVQA benchmark (key_question, key_image,
images_list, question, choices, correct_index, correct_answer, task, task_str,
image_caption). A file with `question` and `answer` columns and no choices holds open QAs:
each row imports one (task type from `task_type` / `task_str`). The index convention is decided per file before anything is written
(see `mcq.decide_index_base`). Refs are `row N`, 0-based like the dataset's own index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from microvqa_tui.config import IngestSettings
from microvqa_tui.errors import IngestError
from microvqa_tui.ingest import mcq, reasons
from microvqa_tui.ingest.fields import (
    CAPTION_KEYS,
    IMAGE_KEYS,
    QA_KEYS,
    FieldTypeError,
    common_fields,
    qa_input,
    rest,
    scalar_text,
)
from microvqa_tui.ingest.paths import resolve_under
from microvqa_tui.ingest.records import (
    KIND_PARQUET,
    ImageRef,
    MCQInput,
    Record,
    Reject,
    excerpt,
)
from microvqa_tui.ingest.validate import Problem

PARQUET_EXTENSIONS = (".parquet", ".pq")
PREFERRED_IMAGE_COLUMNS = ("image", "images", "images_list", "img", "jpg", "png", "image_bytes")
MCQ_COLUMNS = ("question", "choices", "correct_index")
MCQ_KEYS = frozenset({*MCQ_COLUMNS, "correct_answer", "cot", "task_str", "task", "key_question"})
MCQ_PARAM_KEYS = ("key_question", "task")

STRUCT, LIST, BINARY, PATH = "struct", "list", "binary", "path"


@dataclass(slots=True)
class FileLayout:
    image_column: str
    image_shape: str  # struct | list | binary | path
    caption_column: str | None
    has_mcq: bool
    has_qa: bool = False  # question + answer columns, no choices: rows are imported QAs
    index_base: int = 0
    index_ambiguous: bool = False
    rows: int = 0


def _is_image_struct(t: pa.DataType) -> bool:
    return pa.types.is_struct(t) and t.get_field_index("bytes") >= 0


def _image_shape(name: str, t: pa.DataType) -> str | None:
    if _is_image_struct(t):
        return STRUCT
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and _is_image_struct(t.value_type):
        return LIST
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return BINARY
    if name in IMAGE_KEYS and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return PATH
    return None


def detect_layout(path: Path, schema: pa.Schema) -> FileLayout:
    """Which column holds the images, the caption, and whether rows are MCQs."""
    names = list(schema.names)
    ordered = [n for n in PREFERRED_IMAGE_COLUMNS if n in names] + names
    image_column = image_shape = None
    for name in ordered:
        shape = _image_shape(name, schema.field(name).type)
        if shape is not None:
            image_column, image_shape = name, shape
            break
    if image_column is None or image_shape is None:
        raise IngestError(
            f"{path}: no image column",
            hint="expected a Hugging Face image struct {bytes, path}, a list of them, "
            "binary image bytes, or an image path column",
        )
    caption_column = next((k for k in CAPTION_KEYS if k in names and k != image_column), None)
    has_mcq = all(k in names for k in MCQ_COLUMNS)
    has_qa = not has_mcq and "choices" not in names and all(k in names for k in QA_KEYS)
    return FileLayout(image_column, image_shape, caption_column, has_mcq, has_qa)


def _rows(batch: pa.RecordBatch, layout: FileLayout) -> list[dict[str, Any]]:
    """The batch as row dicts, converted column by column (an image struct column becomes
    (bytes, path) tuples without a dict per row)."""
    names = batch.schema.names
    columns: list[list[Any]] = []
    for index, name in enumerate(names):
        column = batch.column(index)
        if name == layout.image_column and layout.image_shape == STRUCT:
            children = {
                column.type.field(i).name: child for i, child in enumerate(column.flatten())
            }
            data = children["bytes"].to_pylist()
            paths = children["path"].to_pylist() if "path" in children else [None] * len(data)
            valid = column.is_valid().to_pylist()
            columns.append(
                [(d, p) if ok else None for d, p, ok in zip(data, paths, valid, strict=True)]
            )
        else:
            columns.append(column.to_pylist())
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


class ParquetReader:
    kind = KIND_PARQUET

    def __init__(
        self,
        files: list[Path],
        settings: IngestSettings,
        log: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.files = files
        self.settings = settings
        self.log = log
        self.label = files[0].name if len(files) == 1 else f"{len(files)} Parquet files"
        self.layouts: list[FileLayout] | None = None

    # ------------------------------------------------------------------ plan
    @staticmethod
    def _open(path: Path) -> pq.ParquetFile:
        try:
            return pq.ParquetFile(path, pre_buffer=False)
        except (OSError, pa.ArrowException) as exc:
            raise IngestError(f"{path}: not a readable Parquet file: {exc}") from None

    def plan(self) -> int | None:
        """Check every file's layout and index convention first: a refused file stops the
        run before anything of any file is written."""
        layouts = []
        for path in self.files:
            pf = self._open(path)
            layout = detect_layout(path, pf.schema_arrow)
            layout.rows = pf.metadata.num_rows
            if layout.has_qa:
                self.log(f"{path.name}: question + answer columns: importing open QAs")
            elif not layout.has_mcq and "question" in pf.schema_arrow.names:
                self.log(
                    f"{path.name}: has 'question' but neither 'answer' nor choices/"
                    "correct_index; importing figures and captions only"
                )
            if layout.has_mcq:
                convention = mcq.decide_index_base(self._answer_rows(pf, path), str(path))
                layout.index_base = convention.base
                layout.index_ambiguous = convention.ambiguous
                if convention.ambiguous and convention.rows:
                    self.log(
                        f"{path.name}: every row fits both 0- and 1-based correct_index; "
                        "assuming 0-based"
                    )
            layouts.append(layout)
        self.layouts = layouts
        return sum(layout.rows for layout in layouts)

    @staticmethod
    def _answer_rows(pf: pq.ParquetFile, path: Path) -> Iterator[tuple[int, Any, Any, Any]]:
        columns = [
            c for c in ("choices", "correct_index", "correct_answer") if c in pf.schema_arrow.names
        ]
        row_no = 0
        try:
            for batch in pf.iter_batches(batch_size=8192, columns=columns):
                data = batch.to_pydict()
                answers = data.get("correct_answer", [None] * batch.num_rows)
                for choices, index, answer in zip(
                    data["choices"], data["correct_index"], answers, strict=True
                ):
                    yield row_no, choices, index, answer
                    row_no += 1
        except (OSError, pa.ArrowException) as exc:
            raise IngestError(f"{path}: cannot read row {row_no}: {exc}") from None

    # ------------------------------------------------------------------ stream
    def __iter__(self) -> Iterator[Record | Reject]:
        if self.layouts is None:
            self.plan()
        assert self.layouts is not None
        for path, layout in zip(self.files, self.layouts, strict=True):
            yield from self._file(path, layout)

    def _file(self, path: Path, layout: FileLayout) -> Iterator[Record | Reject]:
        source = str(path)
        row_no = 0
        try:
            # pre_buffer would cache every row group of the file as the reader goes: memory
            # would grow with the file. Without it, one row group at a time is in memory.
            pf = pq.ParquetFile(path, pre_buffer=False)
            pool = pa.default_memory_pool()
            for batch in pf.iter_batches(batch_size=self.settings.batch_size):
                rows = _rows(batch, layout)
                del batch
                pool.release_unused()  # hand the row group's buffers back (mimalloc keeps them)
                for row in rows:
                    yield self._record(path, source, layout, row_no, row)
                    row_no += 1
        except (OSError, pa.ArrowException) as exc:
            yield Reject(
                source,
                f"row {row_no}",
                reasons.UNREADABLE_SOURCE,
                f"cannot read the file from row {row_no} on: {exc}",
            )

    def _images(
        self, path: Path, layout: FileLayout, row_no: int, value: Any, base_id: str
    ) -> list[ImageRef] | Problem:
        if layout.image_shape == LIST:
            items = list(value or [])
        else:
            items = [] if value is None else [value]
        if not items:
            return Problem(reasons.MISSING_FILE, "the row has no image")
        refs = []
        multi = len(items) > 1
        for j, item in enumerate(items):
            suffix = f" image {j}" if multi else ""
            original_id = f"{base_id}#{j}" if multi and base_id else base_id
            location = f"{path}#row={row_no}" + (f",image={j}" if multi else "")
            if layout.image_shape == BINARY:
                data, rel = item, None
            elif layout.image_shape == PATH:
                data, rel = None, item
            elif isinstance(item, tuple):  # (bytes, path) from _rows
                data, rel = item
            elif isinstance(item, dict):
                data, rel = item.get("bytes"), item.get("path")
            else:
                return Problem(reasons.MISSING_FILE, f"image {j} is not an image struct")
            if data is not None:
                if not isinstance(data, bytes):
                    return Problem(reasons.MISSING_FILE, f"image {j} bytes have the wrong type")
                refs.append(
                    ImageRef(
                        data=data,
                        location=rel or location,
                        original_id=original_id,
                        ref_suffix=suffix,
                    )
                )
            elif isinstance(rel, str) and rel:
                file = resolve_under(path.parent, rel, self.settings.allow_outside_paths)
                if isinstance(file, str):
                    return Problem(reasons.UNSAFE_PATH, f"image {j}: {file}")
                refs.append(
                    ImageRef(
                        path=file, location=str(file), original_id=original_id, ref_suffix=suffix
                    )
                )
            else:
                return Problem(reasons.MISSING_FILE, f"image {j} has neither bytes nor a path")
        return refs

    def _record(
        self, path: Path, source: str, layout: FileLayout, row_no: int, row: dict[str, Any]
    ) -> Record | Reject:
        ref = f"row {row_no}"
        used = {layout.image_column}
        caption = None
        if layout.caption_column is not None:
            caption = row.get(layout.caption_column)
            used.add(layout.caption_column)
        payload = excerpt(row.get("question") or caption or "")
        try:
            fields = common_fields(row, used)
        except FieldTypeError as exc:
            return Reject(source, ref, reasons.MALFORMED_ROW, str(exc), payload)
        images = self._images(
            path, layout, row_no, row.get(layout.image_column), fields.original_id
        )
        if isinstance(images, Problem):
            return Reject(source, ref, images.reason, images.detail, payload)
        item = qa = None
        if layout.has_mcq:
            item = self._mcq(layout, row, row_no)
            if isinstance(item, str):
                return Reject(source, ref, reasons.MALFORMED_ROW, item, payload)
            used.update(MCQ_KEYS)
        elif layout.has_qa:
            qa = qa_input(row, used)
            if isinstance(qa, str):
                return Reject(source, ref, reasons.MALFORMED_ROW, qa, payload)
        return Record(
            kind=self.kind,
            source=source,
            ref=ref,
            images=images,
            caption=caption,
            caption_required=item is None and qa is None,
            original_id=fields.original_id,
            article_id=fields.article_id,
            license=fields.license,
            attribution=fields.attribution,
            meta=rest(row, used),
            mcq=item,
            qa=qa,
            payload=payload,
        )

    @staticmethod
    def _mcq(layout: FileLayout, row: dict[str, Any], row_no: int) -> MCQInput | str:
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            return "question must be a non-empty string"
        parsed = mcq.parse_choices(row.get("choices"), row.get("correct_index"))
        if isinstance(parsed, mcq.RowProblem):
            return parsed.detail
        raw, index = parsed
        choices, stripped = mcq.strip_labels(raw)
        position = mcq.correct_position(index, layout.index_base)
        if not 0 <= position < len(choices):  # planning saw this row fit; guard anyway
            return f"correct_index {index} out of range for {len(choices)} choices"
        try:
            cot = scalar_text(row.get("cot"), "cot")
            task_str = scalar_text(row.get("task_str"), "task_str")
        except FieldTypeError as exc:
            return str(exc)
        params: dict[str, Any] = {
            "source_row": row_no,
            "index_base": layout.index_base,
            "labels_stripped": stripped,
        }
        answer = row.get("correct_answer")
        if isinstance(answer, str) and answer.strip():
            params["source_correct_answer"] = answer
        for key in MCQ_PARAM_KEYS:
            if row.get(key) is not None:
                params[key] = row[key]
        return MCQInput(
            question=question.strip(),
            choices=choices,
            correct_index=position,
            correct_answer=choices[position],
            cot=cot,
            task_str=task_str,
            params=params,
        )
