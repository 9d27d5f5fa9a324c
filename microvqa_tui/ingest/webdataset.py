"""Reader for WebDataset `.tar` shards (BIOMEDICA style), streamed with tarfile in `r|*` mode.

A sample is the run of consecutive members sharing a key (the member path up to the first
dot of its file name): `<key>.jpg|jpeg|png|tif|webp` plus `<key>.json` (caption and
metadata: caption, pmcid/article_id, license, …; with `question` and `answer`, an imported
QA) and/or `<key>.txt` (the caption).
Members are only ever read into memory, never extracted; members with an absolute or `..`
path, and links or devices, are quarantined as `unsafe_path` without reading them.
"""

from __future__ import annotations

import json
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from microvqa_tui.config import IngestSettings
from microvqa_tui.ingest import reasons
from microvqa_tui.ingest.fields import (
    CAPTION_KEYS,
    FieldTypeError,
    common_fields,
    first_key,
    qa_input,
    rest,
)
from microvqa_tui.ingest.records import KIND_WEBDATASET, ImageRef, Record, Reject, excerpt
from microvqa_tui.ingest.validate import IMAGE_EXTENSIONS, caption_byte_limit

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
MAX_JSON_BYTES = 16 * 1024 * 1024


def is_tar_name(name: str) -> bool:
    return name.lower().endswith(TAR_SUFFIXES)


def split_key(name: str) -> tuple[str, str]:
    """WebDataset convention: key = path up to the first dot of the file name; the rest is
    the extension (lower-cased)."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    key = f"{folder}/{stem}" if folder else stem
    return key, ext.lower() if dot else ""


def unsafe_reason(member: tarfile.TarInfo) -> str | None:
    name = member.name
    if member.issym() or member.islnk():
        return f"link member {name!r} -> {member.linkname!r}"
    if not (member.isreg() or member.isdir()):
        return f"member {name!r} is not a regular file"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return f"absolute path {name!r}"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return f"path {name!r} leaves the archive ('..')"
    return None


@dataclass(slots=True)
class _Sample:
    key: str
    images: list[tuple[str, bytes]] = field(default_factory=list)  # (member name, bytes)
    json_member: tuple[str, bytes] | None = None
    txt_member: tuple[str, bytes] | None = None
    problem: Reject | None = None
    members: int = 0


class WebDatasetReader:
    kind = KIND_WEBDATASET

    def __init__(self, shards: list[Path], settings: IngestSettings) -> None:
        self.shards = shards
        self.settings = settings
        self.label = shards[0].name if len(shards) == 1 else f"{len(shards)} shards"

    def plan(self) -> int | None:
        """Count samples by reading the headers of uncompressed shards (seeks past the data);
        None when a shard is compressed (its size is unknown without decompressing it)."""
        if not all(s.name.lower().endswith(".tar") for s in self.shards):
            return None
        total = 0
        for shard in self.shards:
            try:
                with tarfile.open(shard, mode="r:") as tf:
                    last = None
                    while True:
                        member = tf.next()
                        if member is None:
                            break
                        tf.members = []  # keep memory flat on huge shards
                        key, ext = split_key(member.name)
                        if ext.rsplit(".", 1)[-1] in IMAGE_EXTENSIONS and key != last:
                            total += 1
                            last = key
            except (tarfile.TarError, OSError, EOFError, zlib.error):
                return None  # the stream pass will report what is wrong
        return total

    def __iter__(self) -> Iterator[Record | Reject]:
        for shard in self.shards:
            yield from self._shard(shard)

    def _shard(self, shard: Path) -> Iterator[Record | Reject]:
        source = str(shard)
        sample: _Sample | None = None
        last_member = ""
        try:
            with tarfile.open(shard, mode="r|*") as tf:
                while True:
                    member = tf.next()
                    if member is None:
                        break
                    tf.members = []  # stream mode still lists every member: keep memory flat
                    last_member = member.name
                    if member.isdir():
                        continue
                    why = unsafe_reason(member)
                    if why is not None:
                        yield Reject(source, member.name, reasons.UNSAFE_PATH, why, member.name)
                        continue
                    key, ext = split_key(member.name)
                    if sample is None or key != sample.key:
                        if sample is not None:
                            yield from self._emit(source, sample)
                        sample = _Sample(key)
                    self._add(tf, member, ext, sample, source)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            # The sample being assembled may be cut short: quarantine it rather than guess.
            ref = sample.key if sample is not None else last_member or "(start)"
            yield Reject(
                source,
                ref,
                reasons.UNREADABLE_SOURCE,
                f"the shard breaks off at member {last_member!r}: {exc}",
            )
            sample = None
        if sample is not None:
            yield from self._emit(source, sample)

    def _add(
        self, tf: tarfile.TarFile, member: tarfile.TarInfo, ext: str, sample: _Sample, source: str
    ) -> None:
        sample.members += 1
        kind = ext.rsplit(".", 1)[-1]
        if kind in IMAGE_EXTENSIONS:
            limit = self.settings.max_image_bytes
            if member.size > limit and sample.problem is None:
                sample.problem = Reject(
                    source,
                    sample.key,
                    reasons.FILE_TOO_LARGE,
                    f"{member.name}: {member.size} bytes > ingest.max_image_bytes {limit}",
                )
                return
            if sample.problem is None:
                sample.images.append((member.name, self._read(tf, member)))
        elif kind == "json":
            if member.size > MAX_JSON_BYTES:
                sample.problem = sample.problem or Reject(
                    source,
                    sample.key,
                    reasons.FILE_TOO_LARGE,
                    f"{member.name}: {member.size} bytes is too large for a metadata file",
                )
                return
            sample.json_member = (member.name, self._read(tf, member))
        elif kind == "txt":
            if member.size > caption_byte_limit(self.settings):
                sample.problem = sample.problem or Reject(
                    source,
                    sample.key,
                    reasons.CAPTION_TOO_LONG,
                    f"{member.name}: {member.size} bytes, more than ingest.max_caption_chars "
                    f"{self.settings.max_caption_chars} characters can take",
                )
                return
            sample.txt_member = (member.name, self._read(tf, member))
        # other members (.cls, .npy, ...) belong to the sample but are not needed

    @staticmethod
    def _read(tf: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
        handle = tf.extractfile(member)
        if handle is None:  # pragma: no cover - regular members always have a handle
            raise tarfile.ReadError(f"cannot read member {member.name!r}")
        data = handle.read()
        if len(data) != member.size:
            raise tarfile.ReadError(f"member {member.name!r} is truncated")
        return data

    @staticmethod
    def _json(source: str, sample: _Sample) -> tuple[dict[str, Any], Any] | Reject:
        """The sample's JSON metadata without its caption, and the caption (None: none)."""
        if sample.json_member is None:
            return {}, None
        name, raw = sample.json_member
        try:
            meta = json.loads(raw.decode("utf-8-sig", errors="surrogateescape"))
        except (json.JSONDecodeError, RecursionError) as exc:
            return Reject(
                source,
                sample.key,
                reasons.MALFORMED_ROW,
                f"{name}: invalid JSON: {exc}",
                excerpt(raw),
            )
        if not isinstance(meta, dict):
            detail = f"{name}: expected a JSON object, got {type(meta).__name__}"
            return Reject(source, sample.key, reasons.MALFORMED_ROW, detail, excerpt(raw))
        caption: Any = None
        key = first_key(meta, CAPTION_KEYS)
        if key is not None:
            caption = meta.pop(key)
        else:
            for k in CAPTION_KEYS:
                if k in meta:
                    meta.pop(k)
                    caption = ""
        return meta, caption

    def _emit(self, source: str, sample: _Sample) -> Iterator[Record | Reject]:
        if sample.problem is not None:
            yield sample.problem
            return
        has_caption_member = sample.json_member is not None or sample.txt_member is not None
        if not sample.images:
            if has_caption_member:
                yield Reject(
                    source,
                    sample.key,
                    reasons.MISSING_FILE,
                    f"sample {sample.key!r} has a caption but no image member",
                )
            return  # members of no interest (e.g. only .cls): nothing to say
        parsed = self._json(source, sample)
        if isinstance(parsed, Reject):
            yield parsed
            return
        meta, caption = parsed
        if (caption is None or caption == "") and sample.txt_member is not None:
            caption = sample.txt_member[1]
        used: set[str] = set()
        try:
            fields = common_fields(meta, used)
        except FieldTypeError as exc:
            yield Reject(source, sample.key, reasons.MALFORMED_ROW, str(exc))
            return
        qa = qa_input(meta, used)
        if isinstance(qa, str):
            yield Reject(source, sample.key, reasons.MALFORMED_ROW, qa)
            return
        member_name, data = sample.images[0]
        yield Record(
            kind=self.kind,
            source=source,
            ref=sample.key,
            images=[
                ImageRef(
                    data=data,
                    location=f"{source}::{member_name}",
                    original_id=fields.original_id or sample.key,
                )
            ],
            caption=caption,
            caption_required=qa is None,
            qa=qa,
            original_id=fields.original_id or sample.key,
            article_id=fields.article_id,
            license=fields.license,
            attribution=fields.attribution,
            meta=rest(meta, used),
            payload=excerpt(caption) if caption is not None else "",
        )
