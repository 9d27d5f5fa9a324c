"""Batched, idempotent writes.

Every table is keyed by a content-addressed id, so writing the same batch twice is a no-op:
an interrupted ingest or stage can simply be re-run.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from store.schema import TABLES, arrow_schema


def to_arrow(table: str, rows: list[dict[str, Any]] | pa.Table) -> pa.Table:
    """Rows as an Arrow table of the table's exact schema (missing optional fields filled)."""
    schema = arrow_schema(table)
    if isinstance(rows, pa.Table):
        return rows.select(schema.names).cast(schema)
    model = TABLES[table][0]
    filled = [model(**row).model_dump() for row in rows]
    return pa.Table.from_pylist(filled, schema=schema)


def _unique_by_key(data: pa.Table, key: str) -> pa.Table:
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


def insert_new(tbl, table: str, rows: list[dict[str, Any]] | pa.Table) -> int:
    data = to_arrow(table, rows)
    if data.num_rows == 0:
        return 0
    key = TABLES[table][1]
    data = _unique_by_key(data, key)
    before = tbl.count_rows()
    if before == 0:
        tbl.add(data)
    else:
        tbl.merge_insert(key).when_not_matched_insert_all().execute(data)
    return tbl.count_rows() - before


def upsert(tbl, table: str, rows: list[dict[str, Any]] | pa.Table) -> None:
    data = to_arrow(table, rows)
    if data.num_rows == 0:
        return
    key = TABLES[table][1]
    data = _unique_by_key(data, key)
    (tbl.merge_insert(key).when_matched_update_all().when_not_matched_insert_all().execute(data))


def append(tbl, table: str, rows: list[dict[str, Any]]) -> None:
    data = to_arrow(table, rows)
    if data.num_rows:
        tbl.add(data)


def update_where(tbl, where: str, values: dict[str, Any]) -> None:
    tbl.update(where=where, values=values)


def upsert_embeddings(
    store, space: str, item_ids: list[str], vectors, model: str, figure_ids=None
) -> None:
    import numpy as np

    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(item_ids):
        raise ValueError(f"expected {len(item_ids)} vectors, got array of shape {matrix.shape}")
    if not item_ids:
        return
    dim = matrix.shape[1]
    tbl = store.embedding_table(space, dim)
    vector_type = tbl.schema.field("vector").type
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
    data = _unique_by_key(data, "item_id")
    if tbl.count_rows() == 0:
        tbl.add(data)
    else:
        tbl.merge_insert("item_id").when_matched_update_all().when_not_matched_insert_all().execute(
            data
        )
