"""Which source field fills which figure column: the key aliases every reader shares."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# First key present wins. Everything a record does not map goes to Figure.meta_json.
IMAGE_KEYS = ("image", "image_path", "img", "path", "file", "file_name", "filename")
CAPTION_KEYS = ("caption", "image_caption", "figure_caption", "text")
ID_KEYS = ("id", "image_id", "figure_id", "image_name", "key_image", "uid", "key")
ARTICLE_KEYS = ("article_id", "pmcid", "pmc_id", "pmid", "accession_id", "doi")
LICENSE_KEYS = ("license", "licence")
ATTRIBUTION_KEYS = ("attribution", "citation", "credit")


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
