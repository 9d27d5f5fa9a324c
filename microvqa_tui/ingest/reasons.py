"""Quarantine reason codes of the ingest stage, defined once.

Each code is short, stable and machine-readable (it is stored in `quarantine.reason` and
counted in run records); the description is what the CLI and the TUI show beside it.
"""

from __future__ import annotations

STAGE = "ingest"

CORRUPT_IMAGE = "corrupt_image"
IMAGE_TOO_LARGE = "image_too_large"
UNSUPPORTED_FORMAT = "unsupported_format"
FILE_TOO_LARGE = "file_too_large"
MISSING_FILE = "missing_file"
UNREADABLE_FILE = "unreadable_file"
MISSING_CAPTION = "missing_caption"
EMPTY_CAPTION = "empty_caption"
CAPTION_TOO_SHORT = "caption_too_short"
CAPTION_TOO_LONG = "caption_too_long"
CAPTION_NOT_UTF8 = "caption_not_utf8"
MALFORMED_ROW = "malformed_row"
UNSAFE_PATH = "unsafe_path"
UNREADABLE_SOURCE = "unreadable_source"
NAME_NOT_UTF8 = "name_not_utf8"

REASONS: dict[str, str] = {
    CORRUPT_IMAGE: "the image could not be decoded (corrupt or truncated)",
    IMAGE_TOO_LARGE: "the image has more pixels than ingest.max_pixels (decompression-bomb guard)",
    UNSUPPORTED_FORMAT: "not an image in a supported format (PNG, JPEG, TIFF, WebP, GIF, BMP)",
    FILE_TOO_LARGE: "the file is larger than ingest.max_image_bytes",
    MISSING_FILE: "the image file (or the image of a caption) does not exist",
    UNREADABLE_FILE: "the file exists but cannot be read",
    MISSING_CAPTION: "the image has no caption",
    EMPTY_CAPTION: "the caption is empty",
    CAPTION_TOO_SHORT: "the caption is shorter than ingest.min_caption_chars",
    CAPTION_TOO_LONG: "the caption is longer than ingest.max_caption_chars",
    CAPTION_NOT_UTF8: "the caption is not valid UTF-8",
    MALFORMED_ROW: "the row cannot be parsed or has fields of the wrong type",
    UNSAFE_PATH: "an archive member with an absolute or '..' path, or a link; a manifest path "
    "outside the manifest's folder (see ingest.allow_outside_paths)",
    UNREADABLE_SOURCE: "the rest of an archive or file could not be read (truncated or corrupt)",
    NAME_NOT_UTF8: "a file name, path or text field is not valid UTF-8",
}


def describe(reason: str) -> str:
    return REASONS.get(reason, reason)
