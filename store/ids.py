"""Content-addressed ids: the same content always gets the same id, so re-ingesting adds nothing."""

from __future__ import annotations

import hashlib
import unicodedata

ID_HEX_CHARS = 32  # 128 bits: collisions are out of reach at any realistic store size


def content_id(data: bytes) -> str:
    """Id of a blob (an image file's bytes)."""
    return hashlib.sha256(data).hexdigest()[:ID_HEX_CHARS]


def normalize_text(text: str) -> str:
    """Unicode-normalised, whitespace-collapsed text: cosmetic differences get the same id."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def text_id(*parts: str) -> str:
    """Id of an ordered tuple of strings (e.g. figure id + caption text)."""
    digest = hashlib.sha256()
    for part in parts:
        encoded = normalize_text(part).encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()[:ID_HEX_CHARS]
