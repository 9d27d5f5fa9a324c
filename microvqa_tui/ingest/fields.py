"""Which source field fills which figure column: the key aliases every reader shares."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from microvqa_tui.ingest.records import QAInput
from microvqa_tui.vocabulary import TASK_UNKNOWN

# First key present wins. Everything a record does not map goes to Figure.meta_json.
IMAGE_KEYS = ("image", "image_path", "img", "path", "file", "file_name", "filename")
CAPTION_KEYS = ("caption", "image_caption", "figure_caption", "text")
ID_KEYS = ("id", "image_id", "figure_id", "image_name", "key_image", "uid", "key")
ARTICLE_KEYS = ("article_id", "pmcid", "pmc_id", "pmid", "accession_id", "doi")
LICENSE_KEYS = ("license", "licence")
ATTRIBUTION_KEYS = ("attribution", "citation", "credit")
# An open QA: `question` + `answer` and no `choices` (a row with choices is an MCQ).
QA_KEYS = ("question", "answer")
TASK_KEYS = ("task_type", "task_str")
EVIDENCE_KEYS = ("cot", "rationale", "evidence")


class FieldTypeError(ValueError):
    """A field holds a value of the wrong type (e.g. a list where a string belongs)."""


def first_key(row: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if key in row and row[key] is not None and row[key] != "":
            return key
    return None


def scalar_text(value: Any, field: str) -> str:
    """A scalar field as text; ints and floats are fine as ids, containers are not."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    raise FieldTypeError(f"field {field!r} must be a string, got {type(value).__name__}")


@dataclass(slots=True)
class CommonFields:
    original_id: str = ""
    article_id: str = ""
    license: str = ""
    attribution: str = ""


def common_fields(row: dict[str, Any], used: set[str]) -> CommonFields:
    """Id, article, license and attribution from `row`; adds the keys it took to `used`."""
    result = CommonFields()
    for attr, keys in (
        ("original_id", ID_KEYS),
        ("article_id", ARTICLE_KEYS),
        ("license", LICENSE_KEYS),
        ("attribution", ATTRIBUTION_KEYS),
    ):
        key = first_key(row, keys)
        if key is not None:
            setattr(result, attr, scalar_text(row[key], key))
            used.add(key)
    return result


def qa_input(row: dict[str, Any], used: set[str]) -> QAInput | str | None:
    """The row's open QA (None when it has no `question` + `answer`, or has `choices`), or
    what is wrong with it; adds the keys it took to `used`."""
    if "choices" in row or any(row.get(key) in (None, "") for key in QA_KEYS):
        return None
    try:
        question, answer = (scalar_text(row[key], key).strip() for key in QA_KEYS)
        task_key = first_key(row, TASK_KEYS)
        task = scalar_text(row[task_key], task_key).strip() if task_key else ""
        evidence_key = first_key(row, EVIDENCE_KEYS)
        evidence = scalar_text(row[evidence_key], evidence_key) if evidence_key else ""
    except FieldTypeError as exc:
        return str(exc)
    if not question or not answer:
        return "question and answer must be non-empty strings"
    used.update(k for k in (*QA_KEYS, task_key, evidence_key) if k)
    return QAInput(question, answer, task or TASK_UNKNOWN, evidence.strip())


def rest(row: dict[str, Any], used: set[str]) -> dict[str, Any]:
    """The fields nothing else took, for meta_json."""
    return {k: v for k, v in row.items() if k not in used}


def to_json(value: dict[str, Any]) -> str:
    if not value:
        return "{}"
    return json.dumps(value, ensure_ascii=False, default=_json_default, sort_keys=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)
