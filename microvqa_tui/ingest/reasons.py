"""Quarantine reason codes of the ingest stage (defined in `microvqa_tui.vocabulary`).

Each code is short, stable and machine-readable (it is stored in `quarantine.reason` and
counted in run records); the description is what the CLI and the TUI show beside it.
The ingest modules use them as `reasons.CORRUPT_IMAGE`.
"""

from __future__ import annotations

from microvqa_tui.vocabulary import (
    CAPTION_NOT_UTF8,
    CAPTION_TOO_LONG,
    CAPTION_TOO_SHORT,
    CORRUPT_IMAGE,
    EMPTY_CAPTION,
    FILE_TOO_LARGE,
    IMAGE_TOO_LARGE,
    MALFORMED_ROW,
    MISSING_CAPTION,
    MISSING_FILE,
    NAME_NOT_UTF8,
    UNREADABLE_FILE,
    UNREADABLE_SOURCE,
    UNSAFE_PATH,
    UNSUPPORTED_FORMAT,
)
from microvqa_tui.vocabulary import INGEST_REASONS as REASONS
from microvqa_tui.vocabulary import STAGE_INGEST as STAGE

__all__ = [
    "CAPTION_NOT_UTF8",
    "CAPTION_TOO_LONG",
    "CAPTION_TOO_SHORT",
    "CORRUPT_IMAGE",
    "EMPTY_CAPTION",
    "FILE_TOO_LARGE",
    "IMAGE_TOO_LARGE",
    "MALFORMED_ROW",
    "MISSING_CAPTION",
    "MISSING_FILE",
    "NAME_NOT_UTF8",
    "REASONS",
    "STAGE",
    "UNREADABLE_FILE",
    "UNREADABLE_SOURCE",
    "UNSAFE_PATH",
    "UNSUPPORTED_FORMAT",
]


def describe(reason: str) -> str:
    return REASONS.get(reason, reason)
