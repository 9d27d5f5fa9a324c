"""The reads of the store, pushed down to LanceDB: filter (`where`, SQL), projection
(`columns`), order (`order_by`) and offset/limit, so a page of a million-row table costs the
page, not the table, and a scan of one column reads that column only.

`order_by` is a list of column names, each with a leading `-` for descending order, e.g.
`["-size", "group_id"]`; LanceDB sorts the rows that pass the filter (O(matching rows)).
Called through `store.db.Store`; nothing outside `store/` calls these on a table directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa


def quote(value: str) -> str:
    """A SQL string literal for LanceDB filters."""
    return "'" + value.replace("'", "''") + "'"


def in_list(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(quote(v) for v in values)})"


def count(tbl, where: str | None = None) -> int:
    return tbl.count_rows(where) if where else tbl.count_rows()


def ordering(order_by: Sequence[str] | None) -> list[Any] | None:
    """LanceDB's sort keys for `order_by` (see the module docstring)."""
    if not order_by:
        return None
    from lancedb.query import ColumnOrdering

    return [
        ColumnOrdering(column_name=name.removeprefix("-"), ascending=not name.startswith("-"))
        for name in order_by
    ]


def _query(
    tbl,
    where: str | None,
    columns: Sequence[str] | None,
    order_by: Sequence[str] | None = None,
):
    query = tbl.search()
    if where:
        query = query.where(where)
    if columns:
        query = query.select(list(columns))
    sort = ordering(order_by)
    if sort:
        query = query.order_by(sort)
    return query


def page(
    tbl,
    *,
    where: str | None = None,
    columns: Sequence[str] | None = None,
    order_by: Sequence[str] | None = None,
    offset: int = 0,
    limit: int = 50,
) -> list[dict[str, Any]]:
    query = _query(tbl, where, columns, order_by).offset(offset).limit(limit)
    return query.to_arrow().to_pylist()


def arrow(
    tbl,
    *,
    where: str | None = None,
    columns: Sequence[str] | None = None,
    order_by: Sequence[str] | None = None,
) -> pa.Table:
    """Every matching row as one Arrow table (typed columns even when nothing matches)."""
    return _query(tbl, where, columns, order_by).limit(None).to_arrow()


def batches(
    tbl,
    *,
    where: str | None = None,
    columns: Sequence[str] | None = None,
    batch_size: int = 4096,
) -> Iterator[pa.RecordBatch]:
    """Every matching row in Arrow record batches of at most `batch_size` rows, read as they
    are consumed (bounded memory, whatever the table's size)."""
    for batch in _query(tbl, where, columns).limit(None).to_batches(batch_size):
        if batch.num_rows:
            yield batch


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
    return set(arrow(tbl, where=where, columns=[column]).column(column).to_pylist())


def nearest(tbl, vector, k: int = 10, where: str | None = None) -> list[dict[str, Any]]:
    query = tbl.search(vector).metric("cosine").limit(k)
    if where:
        query = query.where(where, prefilter=True)
    return query.to_arrow().to_pylist()
