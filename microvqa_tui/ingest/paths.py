"""Paths and names that come from a source: where they may point, and whether they are text.

- A path a manifest (or a Parquet path column) names resolves under that file's folder;
  anything else (an absolute path elsewhere, `../..`, a symbolic link out) is refused unless
  `ingest.allow_outside_paths` is on, so a manifest cannot make ingest read any file on the
  machine.
- On Linux a file name is bytes: one that is not UTF-8 reaches Python with surrogate escapes
  and cannot be stored. `not_utf8` finds such text, `printable` makes it storable
  (`\\xff` for the undecodable bytes) for the quarantine row that reports it.
"""

from __future__ import annotations

from pathlib import Path

OUTSIDE_HINT = "set ingest.allow_outside_paths or pass --allow-outside-paths to allow it"


def resolve_under(base: Path, value: str, allow_outside: bool) -> Path | str:
    """`value` (absolute, or relative to `base`) as a path, or why it may not be read."""
    candidate = Path(value)
    if not candidate.is_absolute():
        candidate = base / candidate
    if allow_outside:
        return candidate
    root = base.resolve()
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        return f"cannot resolve {printable(value)!r}: {exc}"
    if resolved.is_relative_to(root):
        return candidate
    return f"path {printable(value)!r} is outside the source's folder {printable(str(root))} ({OUTSIDE_HINT})"


def not_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def printable(text: str) -> str:
    """`text` with undecodable bytes (surrogate escapes, lone surrogates) as `\\xNN` escapes."""
    if not not_utf8(text):
        return text
    try:
        raw = text.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        return text.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return raw.decode("utf-8", errors="backslashreplace")
