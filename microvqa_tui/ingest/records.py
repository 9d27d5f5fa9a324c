"""The record type every reader yields, and the rejection a reader or a check produces.

Readers do no validation beyond parsing: they turn one row / file pair / tar sample into a
`Record` (or a `Reject` when the row itself cannot be parsed). The runner validates, hashes
and writes. Records hold image bytes (Parquet, tar) or a path to read later in a worker
(folder, manifest), so reading stays cheap in the thread that streams the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

KIND_FOLDER = "folder"
KIND_MANIFEST = "manifest"
KIND_PARQUET = "parquet"
KIND_WEBDATASET = "webdataset"
KINDS = (KIND_FOLDER, KIND_MANIFEST, KIND_PARQUET, KIND_WEBDATASET)

PAYLOAD_CHARS = 300  # quarantine payload excerpts are cut to this length


def excerpt(value: Any, limit: int = PAYLOAD_CHARS) -> str:
    """A short printable excerpt of an offending input, for the quarantine payload."""
    if isinstance(value, bytes):
        text = value[:limit].decode("utf-8", errors="backslashreplace")
    else:
        text = value if isinstance(value, str) else repr(value)
    text = text.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(slots=True)
class ImageRef:
    """One image of a record: bytes in memory, or a file to read in a worker."""

    data: bytes | None = None
    path: Path | None = None
    location: str = ""  # Figure.image_path: file path, "shard.tar::member", "file.parquet#row=3"
    original_id: str = ""
    ref_suffix: str = ""  # appended to the record's ref for the figure's source_ref


@dataclass(slots=True)
class MCQInput:
    """An imported multiple-choice item, already normalised (0-based index, bare choices)."""

    question: str
    choices: list[str]
    correct_index: int
    correct_answer: str
    cot: str = ""
    task_str: str = ""
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class QAInput:
    """An imported open question–answer pair (a row with `question` and `answer`, no choices)."""

    question: str
    answer: str
    task_type: str
    evidence: str = ""  # the source's rationale (CoT) when it gives one


@dataclass(slots=True)
class Record:
    """One figure–caption pair (or one imported QA / MCQ with its figures and caption)."""

    kind: str
    source: str  # the file or folder it came from (absolute)
    ref: str  # row number, tar member / key, relative file name
    images: list[ImageRef]
    caption: str | bytes | None  # bytes when read raw from a file: decoded during validation
    caption_required: bool = True  # QA and MCQ rows may come without a caption
    original_id: str = ""
    article_id: str = ""
    license: str = ""
    attribution: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    mcq: MCQInput | None = None
    qa: QAInput | None = None
    payload: str = ""  # excerpt of the raw input, shown when the record is quarantined


@dataclass(slots=True)
class Reject:
    """An input that cannot be used, bound for the `quarantine` table."""

    source: str
    ref: str
    reason: str  # one of reasons.REASONS
    detail: str
    payload: str = ""


class Reader(Protocol):
    """What every source reader offers the runner."""

    kind: str
    label: str  # short name of the source, for the progress bar

    def plan(self) -> int | None:
        """Check the source's structure before anything is written (raise IngestError when it
        cannot be ingested at all); return the number of records when cheap to know."""

    def __iter__(self) -> Iterator[Record | Reject]:
        """Stream the records, in a stable order."""
