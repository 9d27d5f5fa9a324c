"""The first Browse page of each view, kept on disk so the app shows it before LanceDB loads.

Importing LanceDB takes 1–3 s, most of the app's start-up. The page the user sees first (a
view with no filter, no sort, offset 0) is saved after every live read together with the
version of the table it was read from; at the next start it is shown only when the table's
newest version on disk is still that one, so a cached page is never stale: any write since
(by this app or by a pipeline step in another process) makes a new version, and the cache
is ignored. Reading the version needs no LanceDB: Lance names each committed version's
manifest after its number in `<table>.lance/_versions/`.

No Textual and no LanceDB here; failures to read or write the cache are silent (it is only
a shortcut; the live query follows either way).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

CACHE_DIR = ".microvqa-tui"
FORMAT = 1
# Lance's "V2" manifest naming stores version n as `u64::MAX - n` so the newest sorts first.
_U64_MAX = (1 << 64) - 1
_V2_FROM = 1 << 63


def disk_version(store_path: Path, table: str) -> int | None:
    """The newest committed version of `table`, from its manifest file names (None: unknown)."""
    versions = Path(store_path) / f"{table}.lance" / "_versions"
    newest = None
    try:
        entries = os.scandir(versions)
    except OSError:
        return None
    with entries:
        for entry in entries:
            stem, _, ext = entry.name.partition(".")
            if ext != "manifest" or not stem.isdigit():
                continue
            number = int(stem)
            version = _U64_MAX - number if number >= _V2_FROM else number
            newest = version if newest is None else max(newest, version)
    return newest


def _cache_file(store_path: Path, view: str) -> Path:
    return Path(store_path) / CACHE_DIR / f"first-page-{view}.json"


def save(
    store_path: Path, view: str, table: str, version: int, rows: list[dict], total: int, limit: int
) -> bool:
    """Keep a first page read live from `version` of `table`; False when it cannot be kept
    (values that JSON cannot carry exactly, an unwritable store)."""
    payload = {
        "format": FORMAT,
        "view": view,
        "table": table,
        "version": version,
        "total": total,
        "limit": limit,
        "rows": rows,
    }
    try:
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False)
        if json.loads(text)["rows"] != rows:  # e.g. tuples or timestamps: not exact
            return False
        target = _cache_file(store_path, view)
        target.parent.mkdir(exist_ok=True)
        partial = target.with_suffix(".tmp")
        partial.write_text(text, encoding="utf-8")
        partial.replace(target)  # atomic: a reader sees the old file or the new one
    except (OSError, TypeError, ValueError):
        return False
    return True


def load(store_path: Path, view: str, limit: int) -> dict[str, Any] | None:
    """The kept first page of `view` (`rows`, `total`) if its table has not changed since."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        payload = json.loads(_cache_file(store_path, view).read_text(encoding="utf-8"))
        if payload["format"] != FORMAT or payload["view"] != view or payload["limit"] != limit:
            return None
        current = disk_version(store_path, payload["table"])
        if current is None or current != payload["version"]:
            return None
        return {"rows": list(payload["rows"]), "total": int(payload["total"])}
    return None
