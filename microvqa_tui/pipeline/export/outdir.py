"""The export folder: who owns what in it, and how `--overwrite` replaces a previous export.

An export only ever deletes files that an export of ours wrote. Its marker is the manifest
(`export.json`, written with `"tool": "microvqa_tui"`), which lists every file the export
wrote. The manifest is written *first*, listing every file the export may write, and
rewritten at the end with the files it did write, so a killed export still leaves a folder
the next `--overwrite` can clear.

- A folder that is empty (or missing) is used as is.
- A non-empty folder without our marker is refused, `--overwrite` or not: it may be anything
  (a store, a dataset, someone's files).
- With the marker and `--overwrite`, only the files the previous manifest listed (and their
  `.partial` temporaries) are deleted, then the folders they leave empty; nothing else in the
  folder is touched, and the new export refuses to replace a file the old one did not list.
- A folder inside the store is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from microvqa_tui.errors import ExportError
from microvqa_tui.pipeline.export.paths import MANIFEST, safe_path, write_text

TOOL = "microvqa_tui"


def read_marker(root: Path) -> list[str] | None:
    """The files a previous export of ours listed in `root`, or None when `root` holds no
    manifest of ours (missing, a link, not JSON, another tool's)."""
    manifest = root / MANIFEST
    if manifest.is_symlink() or not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text("utf-8"))
    except (ValueError, OSError):
        return None
    if not isinstance(data, dict) or data.get("tool") != TOOL:
        return None
    files = data.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return files


def write_marker(root: Path, files: Iterable[str], fields: dict[str, Any]) -> None:
    """Write the manifest: `fields` (the report) and the `files` listed (itself included),
    atomically."""
    listed = sorted({*files, MANIFEST})
    body = {"tool": TOOL, **fields, "files": listed}
    write_text(root, MANIFEST, json.dumps(body, indent=2, default=str))


def _refuse_inside(out_dir: Path, protected: list[Path]) -> None:
    target = out_dir.resolve()
    for inside in protected:
        if target.is_relative_to(inside):
            raise ExportError(
                f"refusing to export into {out_dir}: it is inside the store {inside}",
                hint="choose a folder outside the store",
            )


def _remove_listed(root: Path, listed: list[str], protected: list[Path]) -> None:
    """Delete the listed files (never following links out of root, never inside a
    protected folder), then the folders they leave empty, deepest first. The manifest is
    left to be replaced: a crash meanwhile keeps it."""
    folders: set[Path] = set()
    for relative in sorted(set(listed) - {MANIFEST}):
        try:
            target = safe_path(root, relative)
        except ExportError:
            continue  # a tampered manifest never makes us delete outside the folder
        if any(target.is_relative_to(p) for p in protected):
            continue
        for path in (target, target.with_name(f".{target.name}.partial")):
            if path.is_file() or path.is_symlink():
                path.unlink()
        folders.update(p for p in target.parents if p != root and p.is_relative_to(root))
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()


def prepare_out_dir(
    out_dir: Path,
    *,
    overwrite: bool,
    planned: Iterable[str] = (),
    protected: Iterable[Path] = (),
) -> Path:
    """Make `out_dir` ready for an export that writes (at most) the `planned` files.

    Refuses a folder inside any of `protected` (the store), a non-empty folder that is not
    an export of ours, an export of ours without `overwrite`, and an export whose new files
    would replace files the previous one did not write. Returns the resolved folder, holding
    a manifest that lists the planned files."""
    out_dir = Path(out_dir)
    guarded = [Path(p).resolve() for p in protected]
    _refuse_inside(out_dir, guarded)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a folder")
    planned = sorted(set(planned))
    listed: list[str] = []
    if out_dir.is_dir() and any(out_dir.iterdir()):
        previous = read_marker(out_dir)
        if previous is None:
            raise ExportError(
                f"{out_dir} is not empty and holds no export of ours (no {MANIFEST})",
                hint="choose an empty or new folder; --overwrite only replaces an earlier export",
            )
        if not overwrite:
            raise ExportError(
                f"{out_dir} holds an earlier export",
                hint="pass --overwrite to replace it",
            )
        listed = previous
        foreign = [
            p for p in planned if p not in listed and p != MANIFEST and (out_dir / p).exists()
        ]
        if foreign:
            raise ExportError(
                f"{out_dir} holds {foreign[0]}, which the earlier export did not write",
                hint="move it away or choose another folder",
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    root = out_dir.resolve()
    # Old and new files listed together before anything is deleted or written: whenever
    # the process dies, the manifest names everything of ours in the folder.
    write_marker(root, [*listed, *planned], {"complete": False})
    _remove_listed(root, listed, guarded)
    write_marker(root, planned, {"complete": False})
    return root
