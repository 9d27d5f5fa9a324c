"""Store verification and repair for `microvqa doctor`.

- `verify_table` reads every row of every column (so every fragment and data file), checks
  that the rows read match the table's row count, finds keys held by more than one row (left
  by concurrent ingests of older versions) and compares the table's newest version with the
  newest version this tool wrote (a smaller one means version files were deleted: the table
  silently rolled back).
- A damaged table gets the newest earlier version that reads completely, to restore with
  `restore_version` (LanceDB keeps old versions; restoring writes a new version equal to it).
- `remove_duplicates` keeps one row per key.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from microvqa_tui.errors import StoreError, one_line
from store import locks
from store.db import EMBEDDING_PREFIX, Store, key_of
from store.queries import in_list
from store.schema import TABLES

READ_BATCH = 4096
MAX_VERSIONS_TRIED = 20  # when looking for an intact earlier version of a damaged table
IN_CHUNK = 500


@dataclass
class TableCheck:
    table: str
    rows: int = 0
    version: int = 0
    ok: bool = True
    problem: str = ""
    duplicate_keys: int = 0  # keys held by more than one row
    extra_rows: int = 0  # rows beyond the first of each such key
    written_version: int | None = None  # the newest version this tool wrote
    restore_to: int | None = None  # newest earlier version that reads completely

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_all(tbl) -> int:
    """Stream every column of every row; returns the rows read (raises when a file is bad)."""
    total = 0
    for batch in tbl.search().limit(None).to_batches(READ_BATCH):
        total += batch.num_rows
    return total


def _duplicates(tbl, key: str) -> Counter:
    if tbl.count_rows() == 0:
        return Counter()
    keys = tbl.search().select([key]).limit(None).to_arrow().column(key).to_pylist()
    return Counter({k: n for k, n in Counter(keys).items() if n > 1})


def verify_table(store: Store, name: str) -> TableCheck:
    check = TableCheck(name, written_version=locks.written_version(store.path, name))
    try:
        tbl = store.db.open_table(name)
        check.version = tbl.version
        check.rows = tbl.count_rows()
        read = _read_all(tbl)
        if read != check.rows:
            raise StoreError(f"{read} rows readable of {check.rows}")
        dups = _duplicates(tbl, key_of(name))
    except Exception as exc:  # any failure to read is the finding itself
        check.ok, check.problem = False, f"damaged: {one_line(exc)}"
        check.restore_to = newest_readable_version(store, name, below=check.version)
        return check
    check.duplicate_keys, check.extra_rows = len(dups), sum(dups.values()) - len(dups)
    if dups:
        check.ok = False
        check.problem = f"{check.duplicate_keys} keys held by more than one row"
    if check.written_version is not None and check.written_version > check.version:
        check.ok = False
        check.problem = (
            f"rolled back: this tool wrote version {check.written_version} but the newest "
            f"version on disk is {check.version} (version files were deleted)"
        )
    return check


def newest_readable_version(store: Store, name: str, *, below: int) -> int | None:
    """The newest version before `below` whose every row reads, or None."""
    try:
        versions = sorted(
            (v["version"] for v in store.db.open_table(name).list_versions()), reverse=True
        )
    except Exception:
        return None
    for version in [v for v in versions if v < below][:MAX_VERSIONS_TRIED]:
        try:
            tbl = store.db.open_table(name)
            tbl.checkout(version)
            if _read_all(tbl) == tbl.count_rows():
                return version
        except Exception:
            continue
    return None


def verify_store(store: Store) -> list[TableCheck]:
    names = [n for n in store.table_names() if n in TABLES or n.startswith(EMBEDDING_PREFIX)]
    return [verify_table(store, name) for name in sorted(names)]


def restore_version(store: Store, name: str, version: int) -> int:
    """Make `version` of table `name` its newest again; returns the new version number."""
    if name not in store.table_names():
        raise StoreError(f"no table {name!r} in the store at {store.path}")
    schema = store.db.open_table(name).schema
    with store.writing(name, schema) as tbl:
        known = {v["version"] for v in tbl.list_versions()}
        if version not in known:
            raise StoreError(
                f"table {name} has no version {version}",
                hint=f"versions: {', '.join(map(str, sorted(known)))}",
            )
        tbl.restore(version)
        tbl.checkout_latest()
        return tbl.version


def remove_duplicates(store: Store, name: str) -> int:
    """Keep the first row of each key held by several rows; returns the rows removed."""
    key = key_of(name)
    schema = store.db.open_table(name).schema
    with store.writing(name, schema) as tbl:
        dups = sorted(_duplicates(tbl, key))
        removed = 0
        for start in range(0, len(dups), IN_CHUNK):
            where = in_list(key, dups[start : start + IN_CHUNK])
            rows = tbl.search().where(where).limit(None).to_arrow()
            first: dict[str, int] = {}
            for index, value in enumerate(rows.column(key).to_pylist()):
                first.setdefault(value, index)
            # one delete and one add per chunk: an interruption between the two is undone
            # by restoring the version before (doctor names it)
            tbl.delete(where)
            tbl.add(rows.take(sorted(first.values())))
            removed += rows.num_rows - len(first)
        return removed
