"""Schema evolution: a table written by an older version gets the columns `schema.py` added
since, each with its default, and where a value was kept elsewhere before (a key inside
`params_json`) it is filled from there, once.

`add_missing_columns` is the one place that changes a stored table's columns; `Store` calls
it on every table it opens for writing, under the table's write lock, and before a first
read of a table that lacks a column (`missing`). Adding a column is a metadata change plus
one new column file; the fill rewrites only the rows whose value differs from the default.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from store.schema import TABLES, arrow_schema


def _param(*path: str) -> Callable[[dict[str, Any]], Any]:
    """The value at `path` inside a row's `params_json` (None when absent or malformed)."""

    def read(row: dict[str, Any]) -> Any:
        try:
            value: Any = json.loads(row.get("params_json") or "{}")
        except json.JSONDecodeError:
            return None
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    return read


# (table, column) -> (the columns a fill reads, row -> the column's value or None = default)
FILLS: dict[tuple[str, str], tuple[list[str], Callable[[dict[str, Any]], Any]]] = {
    ("mcqs", "prompt_version"): (["params_json"], _param("prompt_version")),
    ("mcqs", "selection_version"): (["params_json"], _param("select", "version")),
}


def missing(table: str, schema: pa.Schema) -> list[str]:
    """Columns of `table` in `schema.py` that the stored `schema` lacks."""
    if table not in TABLES:
        return []
    stored = set(schema.names)
    return [name for name in arrow_schema(table).names if name not in stored]


def add_missing_columns(tbl: Any, table: str) -> list[str]:
    """Add the columns `tbl` (LanceDB table `table`, write lock held) lacks, with their
    defaults, and fill them from where older versions kept the value; the names added."""
    names = missing(table, tbl.schema)
    if not names:
        return []
    model, key = TABLES[table]
    target = arrow_schema(table)
    nullable = [target.field(n) for n in names if target.field(n).nullable]
    literals = {
        n: _literal(model.model_fields[n].default) for n in names if not target.field(n).nullable
    }
    if nullable:
        tbl.add_columns(nullable)
    if literals:
        tbl.add_columns(literals)
    for name in names:
        if (table, name) in FILLS:
            _fill(tbl, target.field(key), target.field(name), *FILLS[(table, name)])
    return names


def _literal(value: Any) -> str:
    """A column default as a SQL literal (scalars only: what a new non-null column needs)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"CAST({value} AS BIGINT)"
    if isinstance(value, float):
        return f"CAST({value!r} AS DOUBLE)"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no SQL default for {value!r}: give the new column a scalar default")


def _fill(
    tbl: Any,
    key: pa.Field,
    field: pa.Field,
    sources: list[str],
    value_of: Callable[[dict[str, Any]], Any],
) -> None:
    keys, values = [], []
    for row in tbl.to_arrow().select([key.name, *sources]).to_pylist():
        value = value_of(row)
        if value is not None:
            keys.append(row[key.name])
            values.append(str(value) if field.type == pa.string() else value)
    if keys:
        data = pa.table([keys, values], schema=pa.schema([key, field]))
        tbl.merge_insert(key.name).when_matched_update_all().execute(data)
