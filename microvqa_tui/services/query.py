"""The reads behind the Browse and Review screens: views, filters, sorted pages, item details.

No Textual here: everything is a plain function of the store, so it is tested on its own and
the screens only call it from workers.

Paging is pushed down to LanceDB: a page is one filtered, projected `offset/limit` query (plus
one `count_rows` for the total), so its cost does not grow with the table. Sorting uses
LanceDB's `order_by`: it scans the sort column of the rows that pass the filter and keeps the
top `offset + limit`, so a sorted page costs O(matching rows) and deep offsets (page 1,000 of
a 100k table) cost more than the first pages; unsorted pages are read in storage order.
Review navigation is by key (`mcq_id > current`), which is stable while decisions change rows.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from microvqa_tui.vocabulary import STATUS_HELD_OUT, TASK_TYPES

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from store import Store

THUMBNAIL_PX = 640  # images are shrunk to this before they reach the terminal renderer


def quote(value: str) -> str:
    """`store.queries.quote`, imported when first used (see above)."""
    from store.queries import quote as store_quote

    return store_quote(value)


def in_list(column: str, values: list[str]) -> str:
    from store.queries import in_list as store_in_list

    return store_in_list(column, values)


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    width: int | None = None
    kind: str = "text"  # text | id | int | float | list | bloom


@dataclass(frozen=True)
class View:
    """A browsable table: which columns to show and which filters apply."""

    table: str
    key: str
    title: str
    columns: tuple[Column, ...]
    search_columns: tuple[str, ...] = ()
    status: bool = False
    review: bool = False
    task_column: str | None = None
    bloom: bool = False
    tier: bool = False
    range_columns: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        names = [c.name for c in self.columns]
        return names if self.key in names else [self.key, *names]


VIEWS: dict[str, View] = {
    "mcqs": View(
        "mcqs",
        "mcq_id",
        "MCQs",
        (
            Column("mcq_id", "id", 10, "id"),
            Column("question", "question", 48),
            Column("task_str", "task", 14),
            Column("bloom_level", "bloom", 12, "bloom"),
            Column("difficulty_tier", "tier", 7),
            Column("pass_rate", "pass", 5, "float"),
            Column("status", "status", 8),
            Column("review", "review", 10),
        ),
        search_columns=("question", "mcq_id", "figure_id"),
        status=True,
        review=True,
        task_column="task_str",
        bloom=True,
        tier=True,
        range_columns=("pass_rate", "image_free_pass_rate", "bloom_confidence"),
    ),
    "qas": View(
        "qas",
        "qa_id",
        "QAs",
        (
            Column("qa_id", "id", 10, "id"),
            Column("question", "question", 52),
            Column("task_type", "task", 14),
            Column("score", "score", 5, "float"),
            Column("status", "status", 8),
            Column("origin", "origin", 8),
            Column("reason", "reason", 24),
        ),
        search_columns=("question", "answer", "qa_id", "figure_id"),
        status=True,
        task_column="task_type",
        range_columns=("score",),
    ),
    "figures": View(
        "figures",
        "figure_id",
        "Figures",
        (
            Column("figure_id", "id", 10, "id"),
            Column("original_id", "source id", 16),
            Column("format", "format", 6),
            Column("width", "w", 5, "int"),
            Column("height", "h", 5, "int"),
            Column("source_kind", "kind", 9),
            Column("article_id", "article", 16),
            Column("license", "license", 14),
        ),
        search_columns=("original_id", "article_id", "figure_id", "image_path"),
    ),
}


@dataclass(frozen=True)
class Filter:
    """What the filter bar asks for; `None`/empty means "any"."""

    status: str | None = None
    review: str | None = None
    task: str | None = None
    bloom: int | None = None
    tier: str | None = None
    range_column: str | None = None
    range_min: float | None = None
    range_max: float | None = None
    text: str = ""

    def is_empty(self) -> bool:
        return self == Filter(range_column=self.range_column)

    def describe(self) -> str:
        parts = []
        for name in ("status", "review", "task", "tier"):
            value = getattr(self, name)
            if value:
                parts.append(f"{name}={value}")
        if self.bloom is not None:
            parts.append(f"bloom={self.bloom}")
        if self.range_column and (self.range_min is not None or self.range_max is not None):
            lo = "" if self.range_min is None else f"{self.range_min:g}≤"
            hi = "" if self.range_max is None else f"≤{self.range_max:g}"
            parts.append(f"{lo}{self.range_column}{hi}")
        if self.text:
            parts.append(f'text~"{self.text}"')
        return ", ".join(parts) or "everything"


@dataclass(frozen=True)
class Sort:
    column: str
    descending: bool = False


def build_where(view: View, flt: Filter) -> str | None:
    """The LanceDB filter (SQL) for a view and filter; values are quoted with `quote`."""
    clauses: list[str] = []
    if view.status and flt.status:
        clauses.append(f"status = {quote(flt.status)}")
    if view.review and flt.review:
        clauses.append(f"review = {quote(flt.review)}")
    if view.task_column and flt.task:
        clauses.append(f"{view.task_column} = {quote(flt.task)}")
    if view.bloom and flt.bloom is not None:
        clauses.append(f"bloom_level = {int(flt.bloom)}")
    if view.tier and flt.tier:
        clauses.append(f"difficulty_tier = {quote(flt.tier)}")
    if flt.range_column and flt.range_column in view.range_columns:
        if flt.range_min is not None:
            clauses.append(f"{flt.range_column} >= {float(flt.range_min)!r}")
        if flt.range_max is not None:
            clauses.append(f"{flt.range_column} <= {float(flt.range_max)!r}")
    text = flt.text.strip().lower()
    if text and view.search_columns:
        needle = quote(text)
        alternatives = [f"strpos(lower({c}), {needle}) > 0" for c in view.search_columns]
        clauses.append("(" + " OR ".join(alternatives) + ")")
    return " AND ".join(clauses) or None


def and_where(*clauses: str | None) -> str | None:
    parts = [f"({c})" for c in clauses if c]
    return " AND ".join(parts) or None


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


def _ordering(sort: Sort | None, key: str) -> list[Any] | None:
    if sort is None:
        return None
    from lancedb.query import ColumnOrdering

    order = [ColumnOrdering(column_name=sort.column, ascending=not sort.descending)]
    if sort.column != key:  # ties broken by the key, so pages never overlap
        order.append(ColumnOrdering(column_name=key, ascending=True))
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
    tbl = store.table(view.table)
    # Only the unfiltered, unsorted first page is kept between sessions (`ui.page_cache`),
    # so only it needs the version it was read from.
    keepable = offset == 0 and sort is None and where == build_where(view, Filter())
    version = _version(tbl) if keepable else None
    if total is None:
        total = tbl.count_rows(where) if where else tbl.count_rows()
    offset = max(0, min(offset, max(0, total - 1)))
    query = tbl.search()
    if where:
        query = query.where(where)
    query = query.select(view.column_names)
    ordering = _ordering(sort, view.key)
    if ordering:
        query = query.order_by(ordering)
    rows = query.offset(offset).limit(limit).to_arrow().to_pylist() if total else []
    if keepable and _version(tbl) != version:  # the handle moved on mid-read
        version = None
    return Page(view.table, rows, total, offset, limit, where, sort, version)


def _version(tbl: Any) -> int | None:
    try:
        return int(tbl.version)
    except Exception:  # a table type without versions
        return None


def distinct_values(store: Store, table: str, column: str, limit: int = 50) -> list[str]:
    """The distinct non-empty values of a (low-cardinality) string column, most frequent first."""
    from collections import Counter

    tbl = store.table(table)
    total = tbl.count_rows()
    if not total:
        return []
    data = tbl.search().select([column]).limit(total).to_arrow().column(column).to_pylist()
    counts = Counter(v for v in data if v not in (None, ""))
    return [value for value, _ in counts.most_common(limit)]


def task_options(store: Store, view: View) -> list[str]:
    if not view.task_column:
        return []
    found = distinct_values(store, view.table, view.task_column)
    return list(dict.fromkeys([*(t for t in TASK_TYPES if t in found), *found]))


# ---------------------------------------------------------------------- review navigation
REVIEW_COLUMNS = [
    "mcq_id",
    "qa_id",
    "figure_id",
    "question",
    "choices",
    "correct_index",
    "correct_answer",
    "cot",
    "task_str",
    "bloom_level",
    "difficulty_tier",
    "status",
    "reason",
    "review",
    "pass_rate",
    "image_free_pass_rate",
]


def neighbour_key(
    store: Store, view: View, flt: Filter, current: str | None, *, forward: bool = True
) -> str | None:
    """The key after (or before) `current` among the items passing the filter, in key order.
    None when there is none; the first item when `current` is None."""
    from lancedb.query import ColumnOrdering

    where = build_where(view, flt)
    if current is not None:
        where = and_where(where, f"{view.key} {'>' if forward else '<'} {quote(current)}")
    query = store.table(view.table).search()
    if where:
        query = query.where(where)
    ordering = ColumnOrdering(column_name=view.key, ascending=forward)
    rows = query.select([view.key]).order_by([ordering]).limit(1).to_arrow().to_pylist()
    return rows[0][view.key] if rows else None


def position_of(store: Store, view: View, flt: Filter, key: str) -> tuple[int, int]:
    """(1-based position of `key` among the filtered items in key order, total matching)."""
    where = build_where(view, flt)
    total = store.count(view.table, where)
    before = store.count(view.table, and_where(where, f"{view.key} < {quote(key)}"))
    return before + 1, total


# ---------------------------------------------------------------------- details
@dataclass
class Detail:
    """Everything the detail pane shows about one item."""

    item_type: str  # mcq | qa | figure
    item_id: str
    mcq: dict[str, Any] | None = None
    qa: dict[str, Any] | None = None
    figure: dict[str, Any] | None = None
    captions: list[dict[str, Any]] = field(default_factory=list)
    signals: list[dict[str, Any]] = field(default_factory=list)
    neighbours: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    mcqs_of_figure: int = 0
    image: PILImage | None = None
    image_note: str = ""

    @property
    def hold_out_reason(self) -> str:
        for row in (self.mcq, self.qa):
            if row and row.get("status") == STATUS_HELD_OUT:
                return row.get("reason") or "(no reason recorded)"
        return ""


FIGURE_COLUMNS = [
    "figure_id",
    "original_id",
    "width",
    "height",
    "format",
    "mode",
    "byte_size",
    "source_kind",
    "source",
    "image_path",
    "article_id",
    "license",
    "attribution",
]


def load_detail(
    store: Store, item_type: str, item_id: str, *, with_image: bool = True, with_graph: bool = True
) -> Detail:
    """Gather an item, its figure, captions, QA, MCQ, signals, graph neighbours and decisions."""
    detail = Detail(item_type, item_id)
    if item_type == "mcq":
        detail.mcq = store.get("mcqs", item_id)
        if detail.mcq is None:
            return detail
        if detail.mcq.get("qa_id"):
            detail.qa = store.get("qas", detail.mcq["qa_id"])
        figure_id = detail.mcq["figure_id"]
    elif item_type == "qa":
        detail.qa = store.get("qas", item_id)
        if detail.qa is None:
            return detail
        figure_id = detail.qa["figure_id"]
        mcqs = store.page("mcqs", where=f"qa_id = {quote(item_id)}", limit=1)
        detail.mcq = mcqs[0] if mcqs else None
    else:
        figure_id = item_id
        detail.mcqs_of_figure = store.count("mcqs", f"figure_id = {quote(figure_id)}")
    detail.figure = store.get("figures", figure_id, FIGURE_COLUMNS)
    caption_where = f"figure_id = {quote(figure_id)}"
    detail.captions = store.page(
        "captions", where=caption_where, columns=["caption_id", "text", "source"], limit=5
    )
    if detail.qa is not None and with_graph:
        qa_id = detail.qa["qa_id"]
        item_ids = [qa_id] + [c["caption_id"] for c in detail.captions]
        detail.signals = store.page(
            "signals",
            where=in_list("item_id", item_ids),
            columns=["item_id", "name", "value", "available", "model", "detail"],
            limit=200,
        )
        detail.signals.sort(key=lambda s: (s["item_id"] != qa_id, s["name"]))
        detail.neighbours = graph_neighbours(store, qa_id)
    decision_ids = [
        i for i in ((detail.mcq or {}).get("mcq_id"), (detail.qa or {}).get("qa_id")) if i
    ]
    if decision_ids:
        rows = store.page(
            "decisions",
            where=in_list("item_id", decision_ids),
            columns=["item_type", "action", "user", "at", "note", "changes_json"],
            limit=100,
        )
        detail.decisions = sorted(rows, key=lambda r: r["at"])
    if with_image and detail.figure is not None:
        detail.image, detail.image_note = load_image(store, figure_id)
    return detail


def graph_neighbours(store: Store, qa_id: str, limit: int = 12) -> list[dict[str, Any]]:
    """The QA's edges in the graph with the node at the other end (QA question and score)."""
    key = quote(qa_id)
    edges = store.page(
        "edges",
        where=f"src_id = {key} OR dst_id = {key}",
        columns=["src_type", "src_id", "dst_type", "dst_id", "relation", "weight"],
        limit=200,
    )
    edges.sort(key=lambda e: -(e["weight"] or 0.0))
    result = []
    for edge in edges[:limit]:
        outgoing = edge["src_id"] == qa_id
        other_type = edge["dst_type"] if outgoing else edge["src_type"]
        other_id = edge["dst_id"] if outgoing else edge["src_id"]
        result.append(
            {
                "relation": edge["relation"],
                "weight": edge["weight"],
                "type": other_type,
                "id": other_id,
            }
        )
    qa_ids = [n["id"] for n in result if n["type"] == "qa"]
    others = {
        r["qa_id"]: r
        for r in store.get_many("qas", qa_ids, ["qa_id", "question", "score", "status"])
    }
    for neighbour in result:
        other = others.get(neighbour["id"])
        neighbour["text"] = other["question"] if other else ""
        neighbour["score"] = other["score"] if other else None
        neighbour["status"] = other["status"] if other else ""
    return result


def load_image(store: Store, figure_id: str, max_px: int = THUMBNAIL_PX):
    """The figure as a small RGB/L PIL image for the terminal, and a note when it cannot be shown."""
    from pathlib import Path

    from PIL import Image, UnidentifiedImageError

    row = store.get("figures", figure_id, ["image_bytes", "image_path"])
    if row is None:
        return None, "figure not in the store"
    data = row.get("image_bytes")
    try:
        if data:
            image = Image.open(io.BytesIO(data))
        elif row.get("image_path") and Path(row["image_path"]).is_file():
            image = Image.open(row["image_path"])
        else:
            return None, "image bytes not kept in the store"
        image.draft("RGB", (max_px, max_px))  # JPEG: decode at reduced size
        image = to_display_mode(image)
        image.thumbnail((max_px, max_px))
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        return None, f"cannot decode image: {exc}"
    return image, ""


def to_display_mode(image):
    """8-bit RGB/L for rendering; 16-bit and float microscopy images are contrast-stretched."""
    if image.mode in ("RGB", "L"):
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        import numpy as np
        from PIL import Image

        array = np.asarray(image, dtype=np.float32)
        lo, hi = np.percentile(array, (0.5, 99.5)) if array.size else (0.0, 1.0)
        scaled = np.clip((array - lo) / max(hi - lo, 1e-6) * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, mode="L")
    return image.convert("RGB")


def decision_summary(row: dict[str, Any]) -> str:
    """One line for a decision in the detail pane."""
    try:
        changes = json.loads(row.get("changes_json") or "{}")
    except json.JSONDecodeError:
        changes = {}
    fields = [k for k in changes if not k.startswith("_")]
    at = row["at"].strftime("%Y-%m-%d %H:%M") if row.get("at") else ""
    what = f" ({', '.join(fields)})" if row.get("action") == "edit" and fields else ""
    note = f" — {row['note']}" if row.get("note") else ""
    return f"{at} {row.get('user', '')}: {row.get('action', '')}{what}{note}"
