"""Image and caption checks. Pure functions, safe to call from worker threads.

Images are decoded fully (`load()`), which is what detects truncated files; Pillow releases
the GIL while decoding, so a thread pool uses every core.
"""

from __future__ import annotations

import functools
import io
import re
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from microvqa_tui.config import IngestSettings
from microvqa_tui.ingest import reasons

#: Formats accepted (Pillow names). MPO is how Pillow names JPEGs with a multi-picture header.
ACCEPTED_FORMATS = ("JPEG", "MPO", "PNG", "TIFF", "WEBP", "GIF", "BMP")

#: File extensions taken for images when reading folders and tar shards.
IMAGE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "jpe", "tif", "tiff", "webp", "gif", "bmp"})

# Leading bytes of the accepted formats: data that starts like one of them but fails to open
# is corrupt, anything else is an unsupported format.
_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"II*\x00",
    b"MM\x00*",
    b"II+\x00",
    b"MM\x00+",
    b"GIF87a",
    b"GIF89a",
    b"BM",
)


# A Python bytes literal inside a message: b'...' or b"...".
_BYTES_REPR = re.compile(r"""b(['"])(?:\\.|(?!\1).)*\1""")


@dataclass(slots=True, frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    mode: str


@dataclass(slots=True, frozen=True)
class Problem:
    """Why an input failed a check: a reason code and a human detail."""

    reason: str
    detail: str


@contextmanager
def pillow_limits(settings: IngestSettings) -> Iterator[None]:
    """Apply the pixel limit and make Pillow's decompression-bomb *warning* an error, for the
    duration of a run; both are process-wide in Pillow, so they are restored afterwards.

    Pillow warns above MAX_IMAGE_PIXELS and raises only above twice that; ingest refuses
    everything above the limit (check_image also compares the size itself).
    """
    previous = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = settings.max_pixels
        _open_formats()
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = previous


@functools.cache
def _open_formats() -> tuple[str, ...]:
    """The accepted formats this Pillow build can open (MPO is folded into JPEG in newer
    releases); registers every plugin once, before worker threads start opening images."""
    Image.init()
    return tuple(f for f in ACCEPTED_FORMATS if f in Image.OPEN)


def _looks_like_accepted_image(data: bytes) -> bool:
    head = data[:16]
    if head.startswith(_SIGNATURES):
        return True
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def check_image(data: bytes, settings: IngestSettings) -> ImageInfo | Problem:
    """Open and fully decode `data`; the image's size/format/mode, or why it is unusable."""
    if not data:
        return Problem(reasons.CORRUPT_IMAGE, "empty file")
    if len(data) > settings.max_image_bytes:
        return Problem(
            reasons.FILE_TOO_LARGE,
            f"{len(data)} bytes > ingest.max_image_bytes {settings.max_image_bytes}",
        )
    try:
        with Image.open(io.BytesIO(data), formats=_open_formats()) as im:
            width, height = im.size
            if width * height > settings.max_pixels:
                return Problem(
                    reasons.IMAGE_TOO_LARGE,
                    f"{width}x{height} = {width * height} pixels > ingest.max_pixels "
                    f"{settings.max_pixels}",
                )
            info = ImageInfo(width, height, im.format or "", im.mode)
            im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return Problem(reasons.IMAGE_TOO_LARGE, str(exc))
    except UnidentifiedImageError:
        if _looks_like_accepted_image(data):
            return Problem(reasons.CORRUPT_IMAGE, "cannot identify the image: header damaged")
        # Never the bytes themselves: the file may be anything a path pointed at.
        return Problem(
            reasons.UNSUPPORTED_FORMAT,
            f"not a supported image format ({len(data)} bytes, no known image signature)",
        )
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        return Problem(reasons.CORRUPT_IMAGE, f"cannot decode: {_without_bytes(exc)}")
    except Exception as exc:  # a decoder bug on hostile input is still a bad image
        return Problem(
            reasons.CORRUPT_IMAGE, f"cannot decode: {type(exc).__name__}: {_without_bytes(exc)}"
        )
    if width <= 0 or height <= 0:
        return Problem(reasons.CORRUPT_IMAGE, f"invalid size {width}x{height}")
    return info


def _without_bytes(exc: BaseException) -> str:
    """A decoder's message without the bytes some quote (e.g. a bad header's repr)."""
    return _BYTES_REPR.sub("<bytes>", str(exc))


def check_caption(raw: str | bytes | None, settings: IngestSettings) -> str | Problem:
    """The caption as clean text (decoded, stripped), or why it is unusable."""
    if raw is None:
        return Problem(reasons.MISSING_CAPTION, "no caption for this image")
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return Problem(reasons.CAPTION_NOT_UTF8, f"caption is not UTF-8: {exc}")
    elif isinstance(raw, str):
        text = raw
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates (from surrogateescape or \ud800)
            return Problem(reasons.CAPTION_NOT_UTF8, f"caption is not UTF-8: {exc}")
    else:
        return Problem(reasons.MALFORMED_ROW, f"caption must be a string, got {type(raw).__name__}")
    text = text.strip()
    if not text:
        return Problem(reasons.EMPTY_CAPTION, "the caption is empty")
    if len(text) < settings.min_caption_chars:
        return Problem(
            reasons.CAPTION_TOO_SHORT,
            f"{len(text)} characters < ingest.min_caption_chars {settings.min_caption_chars}",
        )
    if len(text) > settings.max_caption_chars:
        return Problem(
            reasons.CAPTION_TOO_LONG,
            f"{len(text)} characters > ingest.max_caption_chars {settings.max_caption_chars}",
        )
    return text


def caption_byte_limit(settings: IngestSettings) -> int:
    """Bytes worth reading for a caption file: beyond this it is too long whatever it holds."""
    return settings.max_caption_chars * 4 + 16
