"""Batched, idempotent writes.

Every table is keyed by a content-addressed id, so writing the same batch twice is a no-op:
an interrupted ingest or stage can simply be re-run.

The functions here turn rows into Arrow data of the table's schema (`prepare`,
`column_data`) and apply it to a LanceDB table handle; `store.db.Store` runs each apply
under the table's write lock on the table's latest version, which is what keeps two
concurrent writers from both inserting the same key.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from microvqa_tui.errors import StoreError
from store.schema import REVIEW_COLUMNS, TABLES, arrow_schema


def to_arrow(table: str, rows: list[dict[str, Any]] | pa.Table) -> pa.Table:
    """Rows as an Arrow table of the table's exact schema (missing optional fields filled)."""
    schema = arrow_schema(table)
    if isinstance(rows, pa.Table):
        return rows.select(schema.names).cast(schema)
    model = TABLES[table][0]
    filled = [model(**row).model_dump() for row in rows]
    return pa.Table.from_pylist(filled, schema=schema)


def unique_by_key(data: pa.Table, key: str) -> pa.Table:
    """Keep the first row of each key: merge-insert needs unique keys within a batch."""
    keys = data.column(key).to_pylist()
    if len(set(keys)) == len(keys):
        return data
    seen: set[str] = set()
    keep = []
    for index, value in enumerate(keys):
        if value not in seen:
            seen.add(value)
            keep.append(index)
    return data.take(keep)


def prepare(table: str, rows: list[dict[str, Any]] | pa.Table) -> pa.Table:
    """Whole rows of `table`, one per key."""
    return unique_by_key(to_arrow(table, rows), TABLES[table][1])


def column_data(table: str, rows: list[dict[str, Any]] | pa.Table, columns: list[str]) -> pa.Table:
    """The key and `columns` of `rows` (dicts or Arrow), typed as in the table's schema.

    Review columns are refused: they have one owner, the review service, which writes them
    with `update_where` and records each change in `decisions`."""
    schema = arrow_schema(table)
    key = TABLES[table][1]
    unknown = [c for c in columns if c not in schema.names or c == key]
    if unknown or not columns:
        raise StoreError(f"cannot update columns {unknown or columns} of table {table}")
    owned = sorted(set(columns) & set(REVIEW_COLUMNS.get(table, ())))
    if owned:
        raise StoreError(
            f"columns {owned} of {table} belong to the review service",
            hint="steps write their own columns only; review decisions go through Reviewer",
        )
    names = [key, *columns]
    fields = pa.schema([schema.field(n) for n in names])
    if isinstance(rows, pa.Table):
        data = rows.select(names).cast(fields)
    else:
        data = pa.Table.from_pylist([{n: row[n] for n in names} for row in rows], schema=fields)
    return unique_by_key(data, key)


def insert_new(tbl, key: str, data: pa.Table) -> int:
    before = tbl.count_rows()
    if before == 0:
        tbl.add(data)
    else:
        tbl.merge_insert(key).when_not_matched_insert_all().execute(data)
    return tbl.count_rows() - before


def upsert(tbl, key: str, data: pa.Table) -> None:
    tbl.merge_insert(key).when_matched_update_all().when_not_matched_insert_all().execute(data)


def update_columns(tbl, key: str, data: pa.Table) -> int:
    """Merge on `key`, setting only the columns `data` has; keys not in the table are skipped."""
    result = tbl.merge_insert(key).when_matched_update_all().execute(data)
    return int(getattr(result, "num_updated_rows", data.num_rows))


def embedding_data(item_ids: list[str], vectors, model: str, figure_ids, vector_type) -> pa.Table:
    import numpy as np

    matrix = np.asarray(vectors, dtype=np.float32)
    dim = matrix.shape[1]
    data = pa.table(
        {
            "item_id": pa.array(item_ids, pa.string()),
            "figure_id": pa.array(figure_ids or [""] * len(item_ids), pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(
                pa.array(matrix.reshape(-1), vector_type.value_type), dim
            ),
            "model": pa.array([model] * len(item_ids), pa.string()),
        }
    )
    return unique_by_key(data, "item_id")


def check_vectors(item_ids: list[str], vectors):
    import numpy as np

    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(item_ids):
        raise ValueError(f"expected {len(item_ids)} vectors, got array of shape {matrix.shape}")
    return matrix
