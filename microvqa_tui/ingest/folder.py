"""Reader for a folder of images with sidecar captions, walked recursively.

`fig1.png` takes its caption from `fig1.json` (key `caption`, plus optional id, article_id,
license, attribution and any other field → meta) or `fig1.txt` (the whole file); the
`fig1.png.json` / `fig1.png.txt` spellings work too. A caption file whose image has an
unknown extension is still tried as an image (so the check can say what is wrong with it);
a caption file with no image beside it is quarantined as `missing_file`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from microvqa_tui.config import IngestSettings
from microvqa_tui.ingest import reasons
from microvqa_tui.ingest.fields import (
    CAPTION_KEYS,
    FieldTypeError,
    common_fields,
    first_key,
    rest,
)
from microvqa_tui.ingest.records import KIND_FOLDER, ImageRef, Record, Reject, excerpt
from microvqa_tui.ingest.validate import IMAGE_EXTENSIONS, caption_byte_limit

SIDECAR_EXTENSIONS = ("json", "txt")
MAX_SIDECAR_JSON_BYTES = 16 * 1024 * 1024


def _ext(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


def walk_files(root: Path) -> Iterator[tuple[Path, list[str]]]:
    """(folder, sorted visible file names) for every folder under root, in a stable order."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        names = sorted(f for f in filenames if not f.startswith("."))
        if names:
            yield Path(dirpath), names


class FolderReader:
    kind = KIND_FOLDER

    def __init__(self, root: Path, settings: IngestSettings) -> None:
        self.root = root
        self.settings = settings
        self.label = root.name or str(root)
        self.source = str(root)

    def plan(self) -> int | None:
        return sum(
            1 for _, names in walk_files(self.root) for n in names if _ext(n) in IMAGE_EXTENSIONS
        )

    def __iter__(self) -> Iterator[Record | Reject]:
        for folder, names in walk_files(self.root):
            yield from self._folder(folder, names)

    # ------------------------------------------------------------------ one folder
    def _folder(self, folder: Path, names: list[str]) -> Iterator[Record | Reject]:
        present = set(names)
        used: set[str] = set()
        images = [n for n in names if _ext(n) in IMAGE_EXTENSIONS]
        for name in images:
            sidecars = [
                s
                for s in (
                    f"{_stem(name)}.json",
                    f"{name}.json",
                    f"{_stem(name)}.txt",
                    f"{name}.txt",
                )
                if s in present
            ]
            used.update(sidecars)
            yield self._record(folder, name, sidecars)
        # Caption files nobody claimed: an image with an unexpected extension, or nothing.
        by_stem: dict[str, list[str]] = {}
        for name in names:
            if _ext(name) not in SIDECAR_EXTENSIONS and _ext(name) not in IMAGE_EXTENSIONS:
                by_stem.setdefault(_stem(name), []).append(name)
        for name in names:
            if _ext(name) not in SIDECAR_EXTENSIONS or name in used:
                continue
            others = by_stem.get(_stem(name), [])
            if others:
                sidecars = [s for s in names if _stem(s) == _stem(name) and s not in others]
                used.update(sidecars)
                for other in others:
                    yield self._record(folder, other, sidecars)
                by_stem.pop(_stem(name), None)
            else:
                yield Reject(
                    self.source,
                    self._rel(folder / name),
                    reasons.MISSING_FILE,
                    f"caption file {name} has no image beside it",
                )

    def _rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def _record(self, folder: Path, image_name: str, sidecars: list[str]) -> Record | Reject:
        image_path = folder / image_name
        ref = self._rel(image_path)
        caption: str | bytes | None = None
        data: dict[str, Any] = {}
        json_name = next((s for s in sidecars if s.endswith(".json")), None)
        txt_name = next((s for s in sidecars if s.endswith(".txt")), None)
        if json_name is not None:
            loaded = self._read_json(folder / json_name, ref)
            if isinstance(loaded, Reject):
                return loaded
            data = loaded
            key = first_key(data, CAPTION_KEYS)
            if key is not None:
                caption = data.pop(key)
            else:  # a caption key present but empty / null is an empty caption
                for k in CAPTION_KEYS:
                    if k in data:
                        data.pop(k)
                        caption = ""
        if caption is None and txt_name is not None:
            raw = self._read_text(folder / txt_name, ref)
            if isinstance(raw, Reject):
                return raw
            caption = raw
        used: set[str] = set()
        try:
            fields = common_fields(data, used)
        except FieldTypeError as exc:
            return Reject(self.source, ref, reasons.MALFORMED_ROW, f"{json_name}: {exc}")
        return Record(
            kind=self.kind,
            source=self.source,
            ref=ref,
            images=[ImageRef(path=image_path, location=str(image_path))],
            caption=caption,
            original_id=fields.original_id,
            article_id=fields.article_id,
            license=fields.license,
            attribution=fields.attribution,
            meta=rest(data, used),
            payload=excerpt(caption) if caption is not None else "",
        )

    def _read_json(self, path: Path, ref: str) -> dict[str, Any] | Reject:
        try:
            size = path.stat().st_size
            if size > MAX_SIDECAR_JSON_BYTES:
                return Reject(
                    self.source,
                    ref,
                    reasons.FILE_TOO_LARGE,
                    f"{path.name}: {size} bytes is too large for a caption file",
                )
            raw = path.read_bytes()
        except OSError as exc:
            return Reject(self.source, ref, reasons.UNREADABLE_FILE, f"{path.name}: {exc}")
        try:
            data = json.loads(raw.decode("utf-8-sig", errors="surrogateescape"))
        except (json.JSONDecodeError, RecursionError) as exc:
            return Reject(
                self.source,
                ref,
                reasons.MALFORMED_ROW,
                f"{path.name}: invalid JSON: {exc}",
                excerpt(raw),
            )
        if not isinstance(data, dict):
            return Reject(
                self.source,
                ref,
                reasons.MALFORMED_ROW,
                f"{path.name}: expected a JSON object, got {type(data).__name__}",
                excerpt(raw),
            )
        return data

    def _read_text(self, path: Path, ref: str) -> bytes | Reject:
        limit = caption_byte_limit(self.settings)
        try:
            size = path.stat().st_size
            if size > limit:
                return Reject(
                    self.source,
                    ref,
                    reasons.CAPTION_TOO_LONG,
                    f"{path.name}: {size} bytes, more than ingest.max_caption_chars "
                    f"{self.settings.max_caption_chars} characters can take",
                )
            return path.read_bytes()
        except OSError as exc:
            return Reject(self.source, ref, reasons.UNREADABLE_FILE, f"{path.name}: {exc}")
