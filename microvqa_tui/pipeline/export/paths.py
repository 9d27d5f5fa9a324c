"""Everything an export writes stays inside the chosen folder.

- Every file name that comes from data (image paths, original ids) is reduced to a safe
  base name: no directories, no "..", no drive letters or absolute paths, only
  `[A-Za-z0-9._-]`, bounded length, never a Windows device name.
- Every write goes through `safe_path`, which resolves the target (following any symlinks
  already in the folder) and refuses anything that lands outside the export root, or a target
  that is itself a symlink.
- Files are written to a temporary name beside the target and renamed into place.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path, PurePosixPath, PureWindowsPath

from microvqa_tui.errors import ExportError

MANIFEST = "export.json"
MAX_NAME = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_WINDOWS_DEVICES = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in range(1, 10)),
    *(f"lpt{i}" for i in range(1, 10)),
}


def safe_filename(name: str, fallback: str = "file") -> str:
    """A base name safe to create in any folder on any OS."""
    name = unicodedata.normalize("NFKC", str(name or ""))
    # Both separators, whatever OS wrote the name; drive letters ("C:") go with them.
    name = PureWindowsPath(name.replace("/", "\\")).name
    name = _UNSAFE.sub("_", name).strip("._-")
    if not name:
        name = _UNSAFE.sub("_", fallback).strip("._-") or "file"
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    if stem.lower() in _WINDOWS_DEVICES:
        stem = "_" + stem
    if len(stem) + len(ext) + 1 > MAX_NAME:
        stem = stem[: MAX_NAME - len(ext) - 1]
    return f"{stem}.{ext}" if ext else stem


def safe_path(root: Path, relative: str) -> Path:
    """`root/relative`, refusing absolute paths, '..' and anything resolving outside root."""
    rel = PurePosixPath(relative.replace("\\", "/"))
    if (
        rel.is_absolute()
        or PureWindowsPath(relative).drive
        or any(part in ("..", "") for part in rel.parts)
    ):
        raise ExportError(
            f"refusing to write {relative!r}: not a plain relative path inside the export folder"
        )
    root_resolved = root.resolve()
    target = root_resolved.joinpath(*rel.parts)
    if target.is_symlink():
        raise ExportError(f"refusing to write through the symbolic link {target}")
    resolved = target.resolve()
    if not resolved.is_relative_to(root_resolved):
        raise ExportError(f"refusing to write {relative!r}: it resolves outside {root_resolved}")
    return resolved


def write_bytes(root: Path, relative: str, data: bytes) -> Path:
    target = safe_path(root, relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    safe_path(root, relative)  # the parents now exist: check again with them resolved
    tmp = target.with_name(f".{target.name}.partial")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return target


def write_text(root: Path, relative: str, text: str) -> Path:
    return write_bytes(root, relative, text.encode("utf-8"))
