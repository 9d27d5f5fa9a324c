"""Which kind of source a path is, and the reader for it.

A file goes by its extension (.jsonl/.ndjson/.csv/.tsv manifest, .parquet, .tar[.gz]).
A glob ("shards/*.tar") expands to files of one kind. A folder holding a manifest
(manifest.jsonl/.csv, metadata.jsonl/.csv) is a manifest; otherwise a folder of Parquet
files (and no images) is Parquet, a folder of tar shards is WebDataset, and a folder with
images is a sidecar folder. `kind=` forces the choice.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from microvqa_tui.config import IngestSettings
from microvqa_tui.errors import IngestError
from microvqa_tui.ingest.folder import FolderReader, walk_files
from microvqa_tui.ingest.manifest import MANIFEST_EXTENSIONS, ManifestReader
from microvqa_tui.ingest.parquet import PARQUET_EXTENSIONS, ParquetReader
from microvqa_tui.ingest.records import (
    KIND_FOLDER,
    KIND_MANIFEST,
    KIND_PARQUET,
    KIND_WEBDATASET,
    KINDS,
    Reader,
)
from microvqa_tui.ingest.validate import IMAGE_EXTENSIONS
from microvqa_tui.ingest.webdataset import WebDatasetReader, is_tar_name

MANIFEST_NAMES = (
    "manifest.jsonl",
    "manifest.csv",
    "manifest.tsv",
    "metadata.jsonl",
    "metadata.csv",
)
SCAN_LIMIT = 100_000  # files looked at when guessing a folder's kind


@dataclass(slots=True)
class Source:
    kind: str
    root: Path  # the folder, or the single file / the glob's folder
    files: list[Path]  # the files to read (a folder source: [root])


def _file_kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(PARQUET_EXTENSIONS):
        return KIND_PARQUET
    if is_tar_name(name):
        return KIND_WEBDATASET
    if name.endswith(MANIFEST_EXTENSIONS):
        return KIND_MANIFEST
    return None


def _files_under(root: Path, kind: str) -> list[Path]:
    files = []
    for folder, names in walk_files(root):
        files.extend(folder / n for n in names if _file_kind(folder / n) == kind)
    return files


def _guess_folder(root: Path) -> str:
    for name in MANIFEST_NAMES:
        if (root / name).is_file():
            return KIND_MANIFEST
    counts = {KIND_PARQUET: 0, KIND_WEBDATASET: 0, "image": 0}
    seen = 0
    for _folder, names in walk_files(root):
        for name in names:
            ext = name.rsplit(".", 1)[-1].lower()
            if ext in IMAGE_EXTENSIONS:
                counts["image"] += 1
            else:
                kind = _file_kind(Path(name))
                if kind in counts:
                    counts[kind] += 1
            seen += 1
        if seen >= SCAN_LIMIT:
            break
    if counts["image"]:
        if counts[KIND_PARQUET] or counts[KIND_WEBDATASET]:
            raise IngestError(
                f"{root} holds both images and Parquet/tar files",
                hint="pass --kind folder|parquet|webdataset",
            )
        return KIND_FOLDER
    if counts[KIND_PARQUET] and not counts[KIND_WEBDATASET]:
        return KIND_PARQUET
    if counts[KIND_WEBDATASET] and not counts[KIND_PARQUET]:
        return KIND_WEBDATASET
    if counts[KIND_PARQUET]:
        raise IngestError(
            f"{root} holds both Parquet files and tar shards", hint="pass --kind parquet|webdataset"
        )
    raise IngestError(
        f"{root}: no images, manifest, Parquet files or tar shards found",
        hint="point at a folder of images with .txt/.json captions, a manifest, "
        "Parquet files or .tar shards",
    )


def resolve_source(path: str | os.PathLike[str], kind: str | None = None) -> Source:
    """The kind of `path` (or `kind` when given) and the files to read, sorted."""
    if kind is not None and kind not in KINDS:
        raise IngestError(f"unknown source kind {kind!r}", hint=f"one of: {', '.join(KINDS)}")
    text = os.fspath(path)
    target = Path(text).expanduser()
    if not target.exists() and any(c in text for c in "*?["):
        files = sorted(
            Path(p).resolve() for p in glob.glob(os.path.expanduser(text), recursive=True)
        )
        files = [f for f in files if f.is_file()]
        if not files:
            raise IngestError(f"no files match {text}")
        kinds = {kind} if kind else {_file_kind(f) for f in files}
        if len(kinds) != 1 or None in kinds:
            raise IngestError(
                f"{text} matches files of several or unknown kinds",
                hint="narrow the pattern or pass --kind",
            )
        chosen = kinds.pop()
        assert chosen is not None
        if chosen == KIND_FOLDER:
            raise IngestError("a glob cannot be read as a folder source; pass the folder")
        return Source(chosen, Path(os.path.commonpath([str(f.parent) for f in files])), files)
    if not target.exists():
        raise IngestError(f"no such file or folder: {text}")
    target = target.resolve()
    if target.is_file():
        chosen = kind or _file_kind(target)
        if chosen is None:
            raise IngestError(
                f"cannot tell what kind of source {target.name} is",
                hint="use .jsonl/.csv (manifest), .parquet, .tar, or pass --kind",
            )
        if chosen == KIND_FOLDER:
            raise IngestError(f"{target} is a file; --kind folder needs a folder")
        return Source(chosen, target.parent, [target])
    chosen = kind or _guess_folder(target)
    if chosen == KIND_FOLDER:
        return Source(chosen, target, [target])
    if chosen == KIND_MANIFEST:
        named = [target / n for n in MANIFEST_NAMES if (target / n).is_file()]
        files = named or sorted(
            p for p in target.iterdir() if p.is_file() and _file_kind(p) == KIND_MANIFEST
        )
    else:
        files = _files_under(target, chosen)
    if not files:
        raise IngestError(f"{target}: no {chosen} files found")
    return Source(chosen, target, files)


def open_reader(
    source: Source, settings: IngestSettings, log: Callable[[str], None] = lambda _m: None
) -> Reader:
    if source.kind == KIND_FOLDER:
        return FolderReader(source.files[0], settings)
    if source.kind == KIND_MANIFEST:
        return ManifestReader(source.files, settings)
    if source.kind == KIND_PARQUET:
        return ParquetReader(source.files, settings, log)
    return WebDatasetReader(source.files, settings)
