"""The reads behind the Browse and Review screens: sorted, filtered pages and review
navigation. Views and filters are in `services.views`, item details in `services.detail`.

No Textual here: everything is a plain function of the store, so it is tested on its own and
the screens only call it from workers.

Paging is pushed down to LanceDB through the store's API: a page is one filtered, projected
`offset/limit` read (plus one count for the total), so its cost does not grow with the
table. Sorting uses LanceDB's `order_by`: it scans the sort column of the rows that pass the
filter and keeps the top `offset + limit`, so a sorted page costs O(matching rows) and deep
offsets (page 1,000 of a 100k table) cost more than the first pages; unsorted pages are read
in storage order. Review navigation is by key (`mcq_id > current`), which is stable while
decisions change rows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from microvqa_tui.services.views import Filter, Sort, View, and_where, build_where, quote
from microvqa_tui.vocabulary import TASK_TYPES

if TYPE_CHECKING:
    from store import Store


@dataclass
class Page:
    view: str
    rows: list[dict[str, Any]]
    total: int
    offset: int
    limit: int
    where: str | None = None
    sort: Sort | None = None
    version: int | None = None  # the table version the rows were read from, when known
    cached: bool = False  # from the first-page cache (`ui.page_cache`), not a live read

    @property
    def page_number(self) -> int:
        return self.offset // self.limit + 1 if self.limit else 1

    @property
    def page_count(self) -> int:
        return max(1, -(-self.total // self.limit)) if self.limit else 1


def _order_by(sort: Sort | None, key: str) -> list[str] | None:
    if sort is None:
        return None
    order = [("-" if sort.descending else "") + sort.column]
    if sort.column != key:  # ties broken by the key, so pages never overlap
        order.append(key)
    return order


def fetch_page(
    store: Store,
    view: View,
    flt: Filter | None = None,
    *,
    sort: Sort | None = None,
    offset: int = 0,
    limit: int = 50,
    total: int | None = None,
) -> Page:
    """One page of a view; `total` may be passed when already known (same filter)."""
    where = build_where(view, flt or Filter())
    # Only the unfiltered, unsorted first page is kept between sessions (`ui.page_cache`),
    # so only it needs the version it was read from.
    keepable = offset == 0 and sort is None and where == build_where(view, Filter())
    version = store.version(view.table) if keepable else None
    if total is None:
        total = store.count(view.table, where)
    offset = max(0, min(offset, max(0, total - 1)))
    rows = []
    if total:
        rows = store.page(
            view.table,
            where=where,
            columns=view.column_names,
            order_by=_order_by(sort, view.key),
            offset=offset,
            limit=limit,
        )
    if keepable and store.version(view.table) != version:  # the handle moved on mid-read
        version = None
    return Page(view.table, rows, total, offset, limit, where, sort, version)


def distinct_values(store: Store, table: str, column: str, limit: int = 50) -> list[str]:
    """The distinct non-empty values of a (low-cardinality) string column, most frequent first."""
    counts = Counter(v for v in store.column(table, column) if v not in (None, ""))
    return [value for value, _ in counts.most_common(limit)]


def task_options(store: Store, view: View) -> list[str]:
    if not view.task_column:
        return []
    found = distinct_values(store, view.table, view.task_column)
    return list(dict.fromkeys([*(t for t in TASK_TYPES if t in found), *found]))


# ---------------------------------------------------------------------- review navigation
def neighbour_key(
    store: Store, view: View, flt: Filter, current: str | None, *, forward: bool = True
) -> str | None:
    """The key after (or before) `current` among the items passing the filter, in key order.
    None when there is none; the first item when `current` is None."""
    where = build_where(view, flt)
    if current is not None:
        where = and_where(where, f"{view.key} {'>' if forward else '<'} {quote(current)}")
    order = [view.key if forward else "-" + view.key]
    rows = store.page(view.table, where=where, columns=[view.key], order_by=order, limit=1)
    return rows[0][view.key] if rows else None


def position_of(store: Store, view: View, flt: Filter, key: str) -> tuple[int, int]:
    """(1-based position of `key` among the filtered items in key order, total matching)."""
    where = build_where(view, flt)
    total = store.count(view.table, where)
    before = store.count(view.table, and_where(where, f"{view.key} < {quote(key)}"))
    return before + 1, total
