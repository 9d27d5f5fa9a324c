"""Streaming reads of whole columns (bounded memory), shared by dedup, splits and export."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from store import Store


def iter_batches(
    store: Store, table: str, columns: list[str], where: str | None = None, batch_size: int = 256
) -> Iterator:
    """Stream a table's rows as Arrow record batches (bounded memory)."""
    tbl = store.table(table)
    if tbl.count_rows() == 0:
        return
    query = tbl.search()
    if where:
        query = query.where(where)
    yield from query.select(columns).limit(None).to_batches(batch_size)


def read_columns(
    store: Store, table: str, columns: list[str], where: str | None = None
) -> dict[str, list]:
    out: dict[str, list] = {c: [] for c in columns}
    for batch in iter_batches(store, table, columns, where, 4096):
        for c in columns:
            out[c].extend(batch.column(c).to_pylist())
    return out


def read_rows(
    store: Store, table: str, columns: list[str], where: str | None = None
) -> list[dict[str, Any]]:
    data = read_columns(store, table, columns, where)
    return [dict(zip(data, values, strict=True)) for values in zip(*data.values(), strict=True)]
