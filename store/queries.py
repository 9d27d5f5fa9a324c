"""The reads the CLI and the TUI need: pages with filters, rows by id, nearest neighbours.

Pages are pushed down to LanceDB (filter, projection, offset/limit), so a page of a
million-row table costs the page, not the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def quote(value: str) -> str:
    """A SQL string literal for LanceDB filters."""
    return "'" + value.replace("'", "''") + "'"


def in_list(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(quote(v) for v in values)})"


def count(tbl, where: str | None = None) -> int:
    return tbl.count_rows(where) if where else tbl.count_rows()


def page(
    tbl,
    *,
    where: str | None = None,
    columns: list[str] | None = None,
    offset: int = 0,
    limit: int = 50,
) -> list[dict[str, Any]]:
    query = tbl.search()
    if where:
        query = query.where(where)
    if columns:
        query = query.select(columns)
    query = query.offset(offset).limit(limit)
    return query.to_arrow().to_pylist()


def batches(
    tbl, columns: list[str], where: str | None = None, batch_size: int = 4096
) -> Iterator[Any]:
    """Matching rows as Arrow record batches of `columns`: a whole column (vectors, image
    bytes) is read with bounded memory."""
    if count(tbl) == 0:
        return
    query = tbl.search()
    if where:
        query = query.where(where)
    yield from query.select(columns).limit(None).to_batches(batch_size)


def by_key(tbl, key: str, value: str, columns: list[str] | None = None) -> dict[str, Any] | None:
    rows = page(tbl, where=f"{key} = {quote(value)}", columns=columns, limit=1)
    return rows[0] if rows else None


def by_keys(
    tbl, key: str, values: list[str], columns: list[str] | None = None
) -> list[dict[str, Any]]:
    if not values:
        return []
    result: list[dict[str, Any]] = []
    # Chunk the IN list: very long filters are slow to parse.
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        result.extend(page(tbl, where=in_list(key, chunk), columns=columns, limit=len(chunk)))
    return result


def column_values(tbl, column: str, where: str | None = None) -> set[str]:
    """All values of one column (e.g. every id), reading only that column."""
    total = count(tbl, where)
    if total == 0:
        return set()
    query = tbl.search()
    if where:
        query = query.where(where)
    data = query.select([column]).limit(total).to_arrow()
    return set(data.column(column).to_pylist())


def nearest(tbl, vector, k: int = 10, where: str | None = None) -> list[dict[str, Any]]:
    query = tbl.search(vector).metric("cosine").limit(k)
    if where:
        query = query.where(where, prefilter=True)
    return query.to_arrow().to_pylist()
