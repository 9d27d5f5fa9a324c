"""Schema evolution: a store written by an earlier version of the tool gains the columns
added to `store.schema` since, the first time a table is opened.

A missing column is added with its schema default (LanceDB `add_columns`, one new table
version, no rewrite of the existing data). Where an older version kept the same fact inside
another column, a backfill moves it into the new column once, in the same write: the only
place that still reads those old encodings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from microvqa_tui.errors import StoreError
from microvqa_tui.vocabulary import (
    ITEM_CAPTION,
    ITEM_INPUT,
    ITEM_QA,
    STAGE_INGEST,
    STAGE_MCQ,
    STAGE_STAGE1,
    SUPERSEDED,
)
from store import locks, writes
from store.queries import in_list, quote
from store.schema import TABLES, arrow_schema

IN_CHUNK = 500  # ids per update filter
_SQL_TYPES = {
    pa.string(): "STRING",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.float32(): "FLOAT",
    pa.bool_(): "BOOLEAN",
}


def missing_columns(table: str, present: pa.Schema) -> list[str]:
    """The columns of `table`'s schema that a stored table lacks (in schema order)."""
    if table not in TABLES:
        return []
    have = set(present.names)
    return [name for name in arrow_schema(table).names if name not in have]


def default_sql(table: str, column: str) -> str:
    """The SQL expression that fills `column` of existing rows: the schema default."""
    model = TABLES[table][0]
    info = model.model_fields[column]
    field = arrow_schema(table).field(column)
    default = info.get_default(call_default_factory=True)
    sql_type = _SQL_TYPES.get(field.type)
    if sql_type is None or isinstance(default, list | dict | datetime):
        raise StoreError(f"cannot add column {column} ({field.type}) to table {table}")
    if default is None:
        return f"CAST(NULL AS {sql_type})"
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, str):
        return quote(default)
    return f"CAST({default!r} AS {sql_type})"


def pending_path(store_path: Path, table: str) -> Path:
    """Marks a table whose new columns are added but not filled yet (a crash in between)."""
    return locks.meta_dir(store_path) / f"backfill-{table}"


def needs_upgrade(store_path: Path, table: str, present: pa.Schema) -> bool:
    return bool(missing_columns(table, present)) or pending_path(store_path, table).exists()


def upgrade(tbl: Any, table: str, store_path: Path) -> list[str]:
    """Add the columns `tbl` lacks, then fill those an older version kept elsewhere.
    Call under the table's write lock; returns the columns added.

    The fill is a second write: a marker file says it is still to do, so a process killed
    between the two writes leaves the next open to finish it (the fills are idempotent)."""
    missing = missing_columns(table, tbl.schema)
    pending = pending_path(store_path, table)
    if missing and table in BACKFILLS:
        pending.parent.mkdir(parents=True, exist_ok=True)
        pending.touch()
    if missing:
        tbl.add_columns({name: default_sql(table, name) for name in missing})
    if pending.exists():
        for backfill in BACKFILLS[table]:
            backfill(tbl)
        pending.unlink()
    return missing


# ---------------------------------------------------------------------------- backfills
_STAGE1_SOURCE = re.compile(r"^(?P<task>[^@]*)@(?P<version>.*)#(?P<attempt>\d+)$")
_MCQ_REF = re.compile(r"^(?P<version>.*)#(?P<attempt>\d+)$")
_SUPERSEDED_REASON = re.compile(r"^superseded: regenerated with prompt (?P<version>\S+)")
TYPED = ["item_kind", "item_id", "task_type", "attempt", "version"]


def _typed_fields(row: dict[str, Any]) -> dict[str, Any] | None:
    """The typed fields of a quarantine row written before they existed, from the
    per-stage encodings of `source` and `ref` (None: nothing to fill)."""
    stage, source, ref = row["stage"], row["source"] or "", row["ref"] or ""
    if stage == STAGE_INGEST:
        return {"item_kind": ITEM_INPUT, "item_id": ref}
    if stage == STAGE_STAGE1 and (m := _STAGE1_SOURCE.match(source)):
        return {
            "item_kind": ITEM_CAPTION,
            "item_id": ref,
            "task_type": m["task"],
            "attempt": int(m["attempt"]),
            "version": m["version"],
        }
    if stage == STAGE_MCQ and (m := _MCQ_REF.match(ref)):
        return {
            "item_kind": ITEM_QA,
            "item_id": source,
            "attempt": int(m["attempt"]),
            "version": m["version"],
        }
    return None


def _backfill_quarantine(tbl: Any) -> None:
    key = TABLES["quarantine"][1]
    old = tbl.search().select([key, "stage", "source", "ref"]).limit(None).to_arrow()
    blank = {"item_kind": "", "item_id": "", "task_type": "", "attempt": 0, "version": ""}
    rows = []
    for row in old.to_pylist():
        typed = _typed_fields(row)
        if typed is not None:
            rows.append({**blank, **typed, key: row[key]})
    if rows:
        writes.update_columns(tbl, key, writes.column_data("quarantine", rows, TYPED))


def _backfill_superseded(tbl: Any) -> None:
    """MCQs an older stage 3 marked with a `superseded: …` reason get `superseded_by` and
    the reason code."""
    where = "reason LIKE 'superseded:%'"  # the old form; the current one is the bare code
    old = tbl.search().where(where).select(["mcq_id", "reason"]).limit(None).to_arrow()
    by_version: dict[str, list[str]] = {}
    for row in old.to_pylist():
        m = _SUPERSEDED_REASON.match(row["reason"])
        by_version.setdefault(m["version"] if m else "unknown", []).append(row["mcq_id"])
    for version, ids in by_version.items():
        for start in range(0, len(ids), IN_CHUNK):
            tbl.update(
                where=in_list("mcq_id", ids[start : start + IN_CHUNK]),
                values={"superseded_by": version, "reason": SUPERSEDED},
            )


def _param(params_json: str | None, *path: str) -> str:
    """The value at `path` inside a row's `params_json` ('' when absent or malformed)."""
    try:
        value: Any = json.loads(params_json or "{}")
    except json.JSONDecodeError:
        return ""
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def _backfill_versions(tbl: Any) -> None:
    """The prompt and selection versions an older version kept inside `params_json` move
    into their columns (they decide what stage 3 and selection still have to do)."""
    key = TABLES["mcqs"][1]
    old = tbl.search().select([key, "params_json"]).limit(None).to_arrow().to_pylist()
    rows = []
    for row in old:
        prompt = _param(row["params_json"], "prompt_version")
        selection = _param(row["params_json"], "select", "version")
        if prompt or selection:
            rows.append({key: row[key], "prompt_version": prompt, "selection_version": selection})
    if rows:
        columns = ["prompt_version", "selection_version"]
        writes.update_columns(tbl, key, writes.column_data("mcqs", rows, columns))


# table -> the fills of its new columns from what older versions wrote
BACKFILLS: dict[str, list[Callable[[Any], None]]] = {
    "quarantine": [_backfill_quarantine],
    "mcqs": [_backfill_superseded, _backfill_versions],
}
