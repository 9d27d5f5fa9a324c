"""Open or create a store: a LanceDB folder holding the tables of `store.schema`."""

from __future__ import annotations

import contextlib
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa

from microvqa_tui.errors import StoreError
from store import queries, writes
from store.schema import TABLES, arrow_schema, embedding_model

EMBEDDING_PREFIX = "emb_"


class Store:
    """A handle on one store folder. Cheap to create; tables are opened on first use.

    Thread-safe for the way the tool uses it: the TUI reads while one worker writes.

    `fresh_after_s`: how stale a read may be with respect to writes by *other processes*
    (this handle always sees its own writes). None never re-checks, the fastest for a
    pipeline step that owns the store; the TUI passes a few seconds so that a stage run from
    another terminal shows up as the user pages.
    """

    def __init__(self, path: Path, *, fresh_after_s: float | None = None) -> None:
        self.path = Path(path)
        interval = None if fresh_after_s is None else timedelta(seconds=fresh_after_s)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.db = lancedb.connect(str(self.path), read_consistency_interval=interval)
        except OSError as exc:
            raise StoreError(f"cannot open store at {self.path}: {exc}") from None
        self._tables: dict[str, Any] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ tables
    def table(self, name: str):
        """The LanceDB table `name`, created empty with its schema when missing."""
        with self._lock:
            tbl = self._tables.get(name)
            if tbl is None:
                if name not in TABLES:
                    raise StoreError(f"unknown table {name!r}")
                tbl = self.db.create_table(name, schema=arrow_schema(name), exist_ok=True)
                self._tables[name] = tbl
            return tbl

    def embedding_table(self, space: str, dim: int | None = None):
        """The embedding table of one model space (`emb_<space>`); `dim` needed to create it."""
        name = EMBEDDING_PREFIX + space
        with self._lock:
            tbl = self._tables.get(name)
            if tbl is None:
                if name in self.table_names():
                    tbl = self.db.open_table(name)
                elif dim is None:
                    raise StoreError(f"no embeddings for space {space!r} yet")
                else:
                    schema = embedding_model(dim).to_arrow_schema()
                    tbl = self.db.create_table(name, schema=schema, exist_ok=True)
                self._tables[name] = tbl
            return tbl

    def table_names(self) -> list[str]:
        result = self.db.list_tables()
        names = getattr(result, "tables", result)
        return list(names)

    def refresh(self) -> None:
        """Drop cached table handles so the next read sees other processes' writes."""
        with self._lock:
            self._tables.clear()

    # ------------------------------------------------------------------ writes
    def insert_new(self, table: str, rows: list[dict[str, Any]] | pa.Table) -> int:
        """Insert rows whose key is not in the table yet; returns how many were new."""
        return writes.insert_new(self.table(table), table, rows)

    def upsert(self, table: str, rows: list[dict[str, Any]] | pa.Table) -> None:
        """Insert rows, replacing those whose key already exists."""
        writes.upsert(self.table(table), table, rows)

    def update_where(self, table: str, where: str, values: dict[str, Any]) -> None:
        writes.update_where(self.table(table), where, values)

    def append(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Plain append, for tables whose rows are never rewritten (decisions, edges of a run)."""
        writes.append(self.table(table), table, rows)

    def write_embeddings(
        self,
        space: str,
        item_ids: list[str],
        vectors,
        model: str,
        figure_ids: list[str] | None = None,
    ) -> None:
        """Upsert one vector per item into the embedding table of `space` (created on demand)."""
        writes.upsert_embeddings(self, space, item_ids, vectors, model, figure_ids)

    def optimize(self) -> None:
        """Compact small fragments left by many batched writes; safe to call any time."""
        for name in self.table_names():
            with contextlib.suppress(Exception):
                self.db.open_table(name).optimize()

    # ------------------------------------------------------------------ reads
    def count(self, table: str, where: str | None = None) -> int:
        return queries.count(self.table(table), where)

    def rows(
        self, table: str, where: str | None = None, columns: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Every row of `table` matching `where` (all columns unless `columns` are given)."""
        total = self.count(table, where)
        if not total:
            return []
        return self.page(table, where=where, columns=columns, limit=total)

    def page(
        self,
        table: str,
        *,
        where: str | None = None,
        columns: list[str] | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        return queries.page(
            self.table(table), where=where, columns=columns, offset=offset, limit=limit
        )

    def get(
        self, table: str, item_id: str, columns: list[str] | None = None
    ) -> dict[str, Any] | None:
        key = TABLES[table][1]
        return queries.by_key(self.table(table), key, item_id, columns)

    def get_many(
        self, table: str, item_ids: list[str], columns: list[str] | None = None
    ) -> list[dict[str, Any]]:
        key = TABLES[table][1]
        return queries.by_keys(self.table(table), key, item_ids, columns)

    def ids(self, table: str, where: str | None = None) -> set[str]:
        key = TABLES[table][1]
        return queries.column_values(self.table(table), key, where)

    def nearest(
        self, space: str, vector, k: int = 10, where: str | None = None
    ) -> list[dict[str, Any]]:
        return queries.nearest(self.embedding_table(space), vector, k, where)

    def counts(self) -> dict[str, int]:
        return {name: self.count(name) for name in TABLES}


def open_store(path: Path | str, *, fresh_after_s: float | None = None) -> Store:
    return Store(Path(path), fresh_after_s=fresh_after_s)
