"""Open or create a store: a LanceDB folder holding the tables of `store.schema`.

Reads never create anything: a table not written yet reads as empty. Writes create their
table on first use, each under the table's cross-process write lock (`store.locks`) and on
the table's latest version, so concurrent writers cannot insert the same key twice.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa

from microvqa_tui.errors import STORE_HINT, MicroVQAError, StoreError, one_line
from store import locks, migrate, queries, writes
from store.schema import TABLES, arrow_schema, embedding_model

EMBEDDING_PREFIX = "emb_"
TABLE_SUFFIX = ".lance"


def is_store(path: Path) -> bool:
    """A folder this tool created, or one holding at least one of its tables."""
    path = Path(path)
    if not path.is_dir():
        return False
    if locks.marker_path(path).exists():
        return True
    return any((path / f"{name}{TABLE_SUFFIX}").is_dir() for name in TABLES)


class Store:
    """A handle on one store folder. Cheap to create; tables are opened on first use.

    Thread-safe for the way the tool uses it: the TUI reads while one worker writes.

    `fresh_after_s`: how stale a read may be with respect to writes by *other processes*
    (this handle always sees its own writes). None never re-checks, the fastest for a
    pipeline step that owns the store; the TUI passes a few seconds so that a stage run from
    another terminal shows up as the user pages.

    `create`: False refuses a folder that is not a store (read-only commands); True (the
    default, for ingest and library use) creates the folder, but refuses a non-empty folder
    that is not a store rather than writing tables among someone's files.
    """

    def __init__(
        self, path: Path, *, fresh_after_s: float | None = None, create: bool = True
    ) -> None:
        self.path = Path(path)
        _check_folder(self.path, create)
        interval = None if fresh_after_s is None else timedelta(seconds=fresh_after_s)
        try:
            if create:
                self.path.mkdir(parents=True, exist_ok=True)
                locks.write_marker(self.path)
            self.db = lancedb.connect(str(self.path), read_consistency_interval=interval)
        except OSError as exc:
            raise StoreError(f"cannot open store at {self.path}: {exc}") from None
        self._tables: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._empty_db: Any = None
        self._current: set[str] = set()  # tables known to have every column of the schema

    # ------------------------------------------------------------------ tables
    def table(self, name: str):
        """The LanceDB table `name` for reading; an empty stand-in (nothing written to the
        store) when the table does not exist yet. For `store/` itself: code outside the store
        reads through the read methods below (`rows`, `batches`, `page`, ...)."""
        if name not in TABLES and not name.startswith(EMBEDDING_PREFIX):
            raise StoreError(f"unknown table {name!r}")
        with self._lock:
            tbl = self._tables.get(name)
        if tbl is None and self._exists(name):
            tbl = self._open(name)
        return tbl if tbl is not None else self._stand_in(name)

    def _open(self, name: str):
        """Open a stored table; one written by an older version first gains the columns
        added since (`store.migrate`), so every reader sees the current schema."""
        tbl = self.db.open_table(name)
        if migrate.needs_upgrade(self.path, name, tbl.schema):
            with self.writing(name) as tbl:
                pass  # `writing` upgrades the table under its write lock
        with self._lock:
            self._current.add(name)
            return self._tables.setdefault(name, tbl)

    def embedding_table(self, space: str, dim: int | None = None):
        """The embedding table of one model space (`emb_<space>`); `dim` creates it empty
        when missing (without it, a missing space is an error)."""
        name = EMBEDDING_PREFIX + space
        if not self._exists(name) and name not in self._tables:
            if dim is None:
                raise StoreError(f"no embeddings for space {space!r} yet")
            with self.writing(name, embedding_model(dim).to_arrow_schema()) as tbl:
                return tbl
        return self.table(name)

    def table_names(self) -> list[str]:
        result = self.db.list_tables()
        names = getattr(result, "tables", result)
        return list(names)

    def refresh(self) -> None:
        """Drop cached table handles so the next read sees other processes' writes."""
        with self._lock:
            self._tables.clear()

    def _exists(self, name: str) -> bool:
        return (self.path / f"{name}{TABLE_SUFFIX}").is_dir()

    def _stand_in(self, name: str):
        """An empty in-memory table with `name`'s schema: readers see an empty table and the
        store folder stays untouched."""
        if name not in TABLES:
            raise StoreError(f"no table {name!r} in the store at {self.path}")
        with self._lock:
            if self._empty_db is None:
                self._empty_db = lancedb.connect("memory://")
            return self._empty_db.create_table(name, schema=arrow_schema(name), exist_ok=True)

    # ------------------------------------------------------------------ writes
    @contextlib.contextmanager
    def writing(self, name: str, schema: pa.Schema | None = None) -> Iterator[Any]:
        """The table `name` (created when missing) under its write lock, on its latest
        version; every write of the store goes through here."""
        if schema is None:
            if name not in TABLES:
                raise StoreError(f"unknown table {name!r}")
            schema = arrow_schema(name)
        locks.write_marker(self.path)
        with locks.hold(locks.table_lock(self.path, name)), self.errors(name, "write"):
            with self._lock:
                tbl = self._tables.get(name)
                if tbl is None:
                    if self._exists(name):
                        tbl = self.db.open_table(name)
                    else:
                        tbl = self.db.create_table(name, schema=schema, exist_ok=True)
                    self._tables[name] = tbl
            tbl.checkout_latest()  # see rows other processes wrote since this handle opened
            if name not in self._current:
                migrate.upgrade(tbl, name, self.path)
                self._current.add(name)
            yield tbl
            locks.record_version(self.path, name, tbl.version)

    @contextlib.contextmanager
    def errors(self, name: str, doing: str) -> Iterator[None]:
        """Turn a LanceDB failure on table `name` into a one-line StoreError."""
        try:
            yield
        except MicroVQAError:
            raise
        except Exception as exc:
            raise StoreError(
                f"cannot {doing} table {name} of the store at {self.path}: {one_line(exc)}",
                hint=STORE_HINT,
            ) from exc

    def insert_new(self, table: str, rows: list[dict[str, Any]] | pa.Table) -> int:
        """Insert rows whose key is not in the table yet; returns how many were new."""
        data = writes.prepare(table, rows)
        if data.num_rows == 0:
            return 0
        with self.writing(table) as tbl:
            return writes.insert_new(tbl, TABLES[table][1], data)

    def upsert(self, table: str, rows: list[dict[str, Any]] | pa.Table) -> None:
        """Insert rows, replacing those whose key already exists (whole rows: for tables
        whose rows one step owns; shared tables use `update_columns`)."""
        data = writes.prepare(table, rows)
        if data.num_rows:
            with self.writing(table) as tbl:
                writes.upsert(tbl, TABLES[table][1], data)

    def update_columns(
        self, table: str, rows: list[dict[str, Any]] | pa.Table, columns: list[str]
    ) -> int:
        """Set only `columns` of the rows with these keys (merge on the key); every other
        column keeps the value it has at write time, and keys not in the table are skipped.

        The write of a step on rows others change too (MCQs, QAs): it never reverts a review
        made while it ran. Returns how many rows were updated."""
        data = writes.column_data(table, rows, columns)
        if data.num_rows == 0 or not self._exists(table):
            return 0
        with self.writing(table) as tbl:
            return writes.update_columns(tbl, TABLES[table][1], data)

    def update_where(self, table: str, where: str, values: dict[str, Any]) -> None:
        with self.writing(table) as tbl:
            tbl.update(where=where, values=values)

    def delete(self, table: str, where: str) -> None:
        if self._exists(table):
            with self.writing(table) as tbl:
                tbl.delete(where)

    def append(self, table: str, rows: list[dict[str, Any]] | pa.Table) -> None:
        """Plain append, for tables whose rows are never rewritten (decisions, edges of a run)."""
        data = writes.to_arrow(table, rows)
        if data.num_rows:
            with self.writing(table) as tbl:
                tbl.add(data)

    def write_embeddings(
        self,
        space: str,
        item_ids: list[str],
        vectors,
        model: str,
        figure_ids: list[str] | None = None,
    ) -> None:
        """Upsert one vector per item into the embedding table of `space` (created on demand)."""
        matrix = writes.check_vectors(item_ids, vectors)
        if not item_ids:
            return
        schema = embedding_model(matrix.shape[1]).to_arrow_schema()
        data = writes.embedding_data(
            item_ids, matrix, model, figure_ids, schema.field("vector").type
        )
        with self.writing(EMBEDDING_PREFIX + space, schema) as tbl:
            if tbl.count_rows() == 0:
                tbl.add(data)
            else:
                writes.upsert(tbl, "item_id", data)

    def optimize(self) -> None:
        """Compact small fragments left by many batched writes; safe to call any time."""
        for name in self.table_names():
            with contextlib.suppress(Exception), self.writing(name, self._schema_of(name)) as tbl:
                tbl.optimize()

    def _schema_of(self, name: str) -> pa.Schema:
        return arrow_schema(name) if name in TABLES else self.db.open_table(name).schema

    # ------------------------------------------------------------------ presence
    @contextlib.contextmanager
    def presence(self, name: str) -> Iterator[None]:
        """Hold a lock named `name` while the block runs (e.g. a step's run id); the kernel
        releases it when this process dies, so `is_present` tells live from dead."""
        path = locks.presence_lock(self.path, name)
        try:
            with locks.hold(path):
                yield
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    def is_present(self, name: str) -> bool:
        return locks.is_held(locks.presence_lock(self.path, name))

    # ------------------------------------------------------------------ reads
    # Every read of the store goes through these; a table not written yet reads as empty.
    # `where` is a LanceDB (SQL) filter, `columns` a projection (all columns when None) and
    # `order_by` column names with `-` for descending (`store.queries`). Embedding tables
    # are read by their table name, `emb_<space>`.
    def count(self, table: str, where: str | None = None) -> int:
        with self.errors(table, "read"):
            return queries.count(self.table(table), where)

    def rows(
        self,
        table: str,
        where: str | None = None,
        columns: list[str] | None = None,
        order_by: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Every row of `table` matching `where`, as dicts. For tables that may hold
        millions of rows, stream with `batches` or read a few columns with `column`."""
        return self.arrow(table, where, columns, order_by).to_pylist()

    def arrow(
        self,
        table: str,
        where: str | None = None,
        columns: list[str] | None = None,
        order_by: list[str] | None = None,
    ) -> pa.Table:
        """Every row of `table` matching `where` as one Arrow table (typed even when empty)."""
        with self.errors(table, "read"):
            return queries.arrow(self.table(table), where=where, columns=columns, order_by=order_by)

    def batches(
        self,
        table: str,
        columns: list[str] | None = None,
        where: str | None = None,
        batch_size: int = 4096,
    ) -> Iterator[pa.RecordBatch]:
        """The rows of `table` matching `where` as Arrow record batches of `columns` (at most
        `batch_size` rows each), read as they are consumed: memory stays one batch whatever
        the table's size (vectors, image bytes, million-row scans)."""
        with self.errors(table, "read"):
            yield from queries.batches(
                self.table(table), where=where, columns=columns, batch_size=batch_size
            )

    def column(self, table: str, name: str, where: str | None = None) -> list[Any]:
        """The values of one column of the rows matching `where` (only that column is read)."""
        return self.arrow(table, where, [name]).column(name).to_pylist()

    def page(
        self,
        table: str,
        *,
        where: str | None = None,
        columns: list[str] | None = None,
        order_by: list[str] | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Rows `offset`..`offset + limit` of the matching rows, in `order_by` order (storage
        order without it; give the key last so that pages of equal values never overlap)."""
        with self.errors(table, "read"):
            return queries.page(
                self.table(table),
                where=where,
                columns=columns,
                order_by=order_by,
                offset=offset,
                limit=limit,
            )

    def get(
        self, table: str, item_id: str, columns: list[str] | None = None
    ) -> dict[str, Any] | None:
        with self.errors(table, "read"):
            return queries.by_key(self.table(table), key_of(table), item_id, columns)

    def get_many(
        self, table: str, item_ids: list[str], columns: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """The rows with these keys (in no particular order; missing keys are skipped)."""
        with self.errors(table, "read"):
            return queries.by_keys(self.table(table), key_of(table), item_ids, columns)

    def ids(self, table: str, where: str | None = None) -> set[str]:
        with self.errors(table, "read"):
            return queries.column_values(self.table(table), key_of(table), where)

    def version(self, table: str) -> int | None:
        """The version of `table` this handle reads (None: the table is not written yet).
        Any write, by any process, makes a new version."""
        if not self._exists(table) and table not in self._tables:
            return None
        with self.errors(table, "read"):
            return int(self.table(table).version)

    def schema(self, table: str) -> pa.Schema:
        """The Arrow schema of `table` (of a written embedding table: its vector size)."""
        if table in TABLES:
            return arrow_schema(table)
        with self.errors(table, "read"):
            return self.table(table).schema

    def nearest(
        self, space: str, vector, k: int = 10, where: str | None = None
    ) -> list[dict[str, Any]]:
        """The `k` rows of `emb_<space>` closest to `vector` (cosine), with `_distance`."""
        with self.errors(EMBEDDING_PREFIX + space, "read"):
            return queries.nearest(self.embedding_table(space), vector, k, where)

    def counts(self) -> dict[str, int]:
        return {name: self.count(name) for name in TABLES}


def key_of(table: str) -> str:
    """The key column of `table` (`item_id` for embedding tables)."""
    return TABLES[table][1] if table in TABLES else "item_id"


def _check_folder(path: Path, create: bool) -> None:
    if is_store(path):
        return
    if not create:
        what = "does not exist" if not path.exists() else "is not a microvqa store"
        raise StoreError(
            f"{path} {what}",
            hint="point --store at a store; `microvqa ingest SOURCE` creates one",
        )
    if path.is_dir() and any(path.iterdir()):
        raise StoreError(
            f"{path} is a folder with other files, not a microvqa store",
            hint="choose a new or empty folder for the store",
        )


def open_store(
    path: Path | str, *, fresh_after_s: float | None = None, create: bool = True
) -> Store:
    return Store(Path(path), fresh_after_s=fresh_after_s, create=create)
