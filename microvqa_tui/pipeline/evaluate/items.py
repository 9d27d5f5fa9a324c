"""Reading an MCQ set to evaluate: an export of ours, MicroVQA++ / MicroVQA Parquet or JSONL
files (several images per question included), or a store folder (its exportable MCQs)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microvqa_tui.errors import IngestError, PipelineError


# ============================================================================ items
@dataclass
class EvalItem:
    item_id: str
    question: str
    choices: list[str]
    correct_index: int  # 0-based
    images: list[bytes] = field(default_factory=list)
    task: str = ""
    bloom: int | None = None
    family: str = ""
    split: str = ""


@dataclass
class SourceInfo:
    source: str
    kind: str  # export | parquet | jsonl | store
    files: list[str] = field(default_factory=list)
    index_base: int = 0
    skipped: int = 0
    notes: list[str] = field(default_factory=list)


def _choices_and_base(rows: list[tuple[int, Any, Any, Any]], source: str) -> int:
    from microvqa_tui.ingest.mcq import decide_index_base

    return decide_index_base(rows, source).base


def _clean_choices(raw: Any) -> list[str] | None:
    from microvqa_tui.ingest.mcq import strip_labels

    if isinstance(raw, str) or not isinstance(raw, list | tuple) or len(raw) < 2:
        return None
    if not all(isinstance(c, str) and c.strip() for c in raw):
        return None
    return strip_labels(list(raw))[0]


def _image_bytes(value: Any, base_dir: Path) -> bytes | None:
    """Bytes of an image given as HF struct, raw bytes or a path relative to the source."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        value = value.get("path")
        if not value:
            return None
    if isinstance(value, str):
        path = Path(value)
        if not path.is_absolute():
            path = (base_dir / path).resolve()
            if not path.is_relative_to(base_dir.resolve()):
                return None  # a relative path must stay inside the source's folder
        try:
            return path.read_bytes()
        except OSError:
            return None
    return None


def _images_of(row: dict[str, Any], base_dir: Path) -> list[bytes]:
    found: list[Any] = []
    if row.get("images_list") is not None:
        found.extend(row["images_list"])
    elif row.get("images") is not None and isinstance(row["images"], list):
        found.extend(row["images"])
    else:
        if row.get("image") is not None:
            found.append(row["image"])
        found.extend(row.get("extra_images") or [])
    out = []
    for value in found:
        data = _image_bytes(value, base_dir)
        if data:
            out.append(data)
    return out


def _bloom(row: dict[str, Any]) -> int | None:
    for key in ("bloom_level", "blooms_level", "bloom", "blooms"):
        value = row.get(key)
        if value is None or value == "":
            continue
        try:
            return int(value)
        except (TypeError, ValueError):
            match = re.search(r"\d", str(value))
            if match:
                return int(match.group())
    return None


def _task(row: dict[str, Any]) -> str:
    for key in ("task_str", "task_type", "task"):
        value = row.get(key)
        if value not in (None, ""):
            return str(value)
    return ""


def _row_item(
    row: dict[str, Any], number: int, base: int, base_dir: Path, with_images: bool
) -> EvalItem | None:
    question = row.get("question") or row.get("key_question_text")
    choices = _clean_choices(
        row.get("choices") if row.get("choices") is not None else row.get("options")
    )
    index = row.get("correct_index")
    if not isinstance(question, str) or not question.strip() or choices is None or index is None:
        return None
    try:
        position = int(index) - base
    except (TypeError, ValueError):
        return None
    if not 0 <= position < len(choices):
        return None
    item_id = str(
        row.get("mcq_id")
        or row.get("key_question")
        or row.get("id")
        or row.get("question_id")
        or number
    )
    return EvalItem(
        item_id=item_id,
        question=question.strip(),
        choices=choices,
        correct_index=position,
        images=_images_of(row, base_dir) if with_images else [],
        task=_task(row),
        bloom=_bloom(row),
        family=str(row.get("family") or ""),
        split=str(row.get("split") or ""),
    )


def _parquet_rows(path: Path, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    handle = pq.ParquetFile(str(path))
    names = set(handle.schema_arrow.names)
    cols = [c for c in columns if c in names] if columns else None
    for batch in handle.iter_batches(batch_size=64, columns=cols):
        yield from batch.to_pylist()


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        text = handle.read()
    stripped = text.lstrip()
    if stripped.startswith("["):
        data = json.loads(stripped)
        yield from (row for row in data if isinstance(row, dict))
        return
    for line in text.splitlines():
        line = line.strip()
        if line:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                yield row


def _file_rows(path: Path, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    if path.suffix == ".parquet":
        yield from _parquet_rows(path, columns)
    else:
        yield from _jsonl_rows(path)


def _source_files(source: Path) -> tuple[str, list[Path]]:
    if source.is_file():
        if source.suffix == ".parquet":
            return "parquet", [source]
        if source.suffix in (".jsonl", ".json"):
            return "jsonl", [source]
        raise PipelineError(f"cannot evaluate {source}: not a .parquet, .jsonl or .json file")
    if not source.is_dir():
        raise PipelineError(f"evaluation source {source} not found")
    kind = "export" if (source / "export.json").is_file() else ""
    parquet = sorted(p for p in source.rglob("*.parquet") if not p.name.startswith("."))
    if parquet:
        return kind or "parquet", parquet
    jsonl = sorted(p for p in source.glob("*.jsonl") if not p.name.startswith("."))
    if jsonl:
        return kind or "jsonl", jsonl
    raise PipelineError(
        f"no Parquet or JSONL MCQ files in {source}",
        hint="evaluate a parquet or jsonl export (LLaVA conversations carry no choices list)",
    )


def load_items(
    source: Path | str,
    *,
    split: str | None = None,
    limit: int | None = None,
    with_images: bool = True,
) -> tuple[list[EvalItem], SourceInfo]:
    """Read an MCQ set. Whether `correct_index` is 0- or 1-based is decided per file (the
    ingest rule, checked against `correct_answer`); a file that fits neither is refused."""
    source = Path(source)
    if source.is_dir() and (source / "mcqs.lance").exists():
        return _store_items(source, limit=limit, with_images=with_images)
    kind, files = _source_files(source)
    info = SourceInfo(str(source), kind, [str(f) for f in files])
    items: list[EvalItem] = []
    for path in files:
        if split and kind == "export" and not path.name.startswith(split):
            continue
        checks = [
            (
                n,
                r.get("choices") if r.get("choices") is not None else r.get("options"),
                r.get("correct_index"),
                r.get("correct_answer"),
            )
            for n, r in enumerate(
                _file_rows(path, ["choices", "options", "correct_index", "correct_answer"]), 1
            )
        ]
        try:
            base = _choices_and_base(checks, str(path))
        except IngestError as exc:
            raise PipelineError(str(exc.message), hint=exc.hint) from None
        info.index_base = base
        for number, row in enumerate(_file_rows(path), 1):
            if split and row.get("split") and row["split"] != split:
                continue
            item = _row_item(row, number, base, path.parent, with_images)
            if item is None:
                info.skipped += 1
                continue
            items.append(item)
            if limit and len(items) >= limit:
                return items, info
    return items, info


def _store_items(
    path: Path, *, limit: int | None, with_images: bool
) -> tuple[list[EvalItem], SourceInfo]:
    from microvqa_tui.pipeline.export.select import select_mcqs
    from store import open_store

    store = open_store(path, create=False)
    selection = select_mcqs(store)
    rows = selection.mcqs[:limit] if limit else selection.mcqs
    images: dict[str, bytes] = {}
    if with_images:
        fids = sorted({f for r in rows for f in r["image_ids"]})
        for fig in store.get_many(
            "figures", fids, columns=["figure_id", "image_bytes", "image_path"]
        ):
            data = fig.get("image_bytes") or _image_bytes(fig.get("image_path"), Path("/"))
            if data:
                images[fig["figure_id"]] = data
    items = [
        EvalItem(
            r["mcq_id"],
            r["question"],
            list(r["choices"]),
            r["correct_index"],
            [images[f] for f in r["image_ids"] if f in images],
            r.get("task_str") or "",
            r.get("bloom_level"),
            r.get("family") or "",
        )
        for r in rows
    ]
    return items, SourceInfo(str(path), "store", [], 0, 0, [f"selection: {selection.rule}"])
