"""Deprecated: read through `Store.rows` / `Store.batches` instead.

Kept only for `pipeline/export/select.py` and `pipeline/splits.py`, which other work
owns; remove this module once they call `store.rows(table, columns=...)` directly.
"""

from __future__ import annotations

from typing import Any

from store import Store


def read_rows(
    store: Store, table: str, columns: list[str], where: str | None = None
) -> list[dict[str, Any]]:
    return store.rows(table, where=where, columns=columns)
