"""Column-wise Arrow table building in a table's exact store schema.

The hot path builds thousands of rows per second; validating each through the pydantic
model (store.writes.to_arrow with dicts) costs more than the write itself, so rows are
appended to per-column lists and turned into one Arrow table per batch. Columns a row does
not set take the schema model's default.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pyarrow as pa
from pydantic_core import PydanticUndefined

from store.schema import TABLES, arrow_schema

_REQUIRED = object()


@cache
def _defaults(table: str) -> dict[str, Any]:
    model = TABLES[table][0]
    defaults: dict[str, Any] = {}
    for name in arrow_schema(table).names:
        info = model.model_fields[name]
        if info.default_factory is not None:
            defaults[name] = info.default_factory()  # type: ignore[call-arg]
        elif info.default is PydanticUndefined:
            defaults[name] = _REQUIRED
        else:
            defaults[name] = info.default
    return defaults


class Columns:
    """Rows of one store table, kept column by column."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.schema = arrow_schema(table)
        self.defaults = _defaults(table)
        self.data: dict[str, list[Any]] = {name: [] for name in self.schema.names}

    def __len__(self) -> int:
        return len(self.data[self.schema.names[0]])

    def append(self, values: dict[str, Any]) -> None:
        for name, column in self.data.items():
            value = values.get(name, _REQUIRED)
            if value is _REQUIRED:
                value = self.defaults[name]
                if value is _REQUIRED:
                    raise KeyError(f"{self.table}.{name} is required")
            column.append(value)

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_pydict(self.data, schema=self.schema)
